"""Per-example quality metrics and bootstrap confidence intervals; pure functions over lists and numpy arrays."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (``rouge-score``)."""
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


def sentence_bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU in [0, 100] (``sacrebleu``, with its default exponential smoothing)."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(prediction, [reference]).score)


def corpus_bleu(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def expected_calibration_error(confidences, correct, bins: int = 10) -> float:
    """ECE: the bin-weighted gap between mean confidence and accuracy, equal-width bins over [0, 1]."""
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(conf[sel].mean() - hit[sel].mean())
    return float(ece)


def bootstrap_ci(values, *, statistic=np.mean, resamples: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (resampling examples)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    stats = np.apply_along_axis(statistic, 1, x[idx]) if statistic is not np.mean else x[idx].mean(axis=1)
    return (float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2)))


def paired_delta_ci(candidate, baseline, **kwargs) -> tuple[float, float]:
    """Bootstrap interval of mean(candidate - baseline) over the same examples (a paired comparison)."""
    return bootstrap_ci(np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float), **kwargs)


def corpus_bleu_delta_ci(candidate: list[str], baseline: list[str], references: list[str], *, resamples: int = 1000,
                         seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap interval of corpus BLEU(candidate) - corpus BLEU(baseline): the same resampled examples for
    both, each side's BLEU from its resampled n-gram statistics (as sacrebleu's own paired bootstrap test does)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    c = np.asarray(bleu._extract_corpus_statistics(candidate, [references]), dtype=float)
    b = np.asarray(bleu._extract_corpus_statistics(baseline, [references]), dtype=float)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        idx = rng.integers(0, len(references), len(references))
        deltas.append(bleu._compute_score_from_stats(list(c[idx].sum(0))).score
                      - bleu._compute_score_from_stats(list(b[idx].sum(0))).score)
    return float(np.quantile(deltas, 0.025)), float(np.quantile(deltas, 0.975))


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")
