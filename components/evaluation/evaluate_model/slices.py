"""Metrics per slice of the eval set (``eval_config.slices``: fields of the eval records, e.g. ``language``,
``customer_tier``, or the demographic term of counterfactual pairs), each with its bootstrap interval, and the
candidate against each baseline per slice with a paired interval: what the fairness rules of the regression gate read.
Pure functions over the evaluation's per-example rows; never imports kfp."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from kfp_llmops.components.evaluation.evaluate_model import metrics
from kfp_llmops.errors import UserInputError

MISSING = "(missing)"  # the slice of records without the field
PER_EXAMPLE = ("exact_match", "rouge_l", "sentence_bleu")


def slice_labels(table, fields) -> dict[str, list[str]]:
    """``{field: [the value of each record, as text]}`` from the eval set's table; a field no record has is named."""
    labels = {}
    for name in fields:
        if name not in table.frame.columns:
            raise UserInputError(f"eval_config.slices names {name!r}, which the eval set at {table.path} "
                                 f"does not have (its fields: {sorted(map(str, table.frame.columns))})")
        labels[name] = [MISSING if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                        for v in table.frame[name]]
    return labels


def _groups(values: list[str]) -> dict[str, np.ndarray]:
    return {v: np.flatnonzero(np.asarray(values) == v) for v in sorted(set(values))}


@lru_cache(maxsize=1)
def _scorer():
    from sacrebleu.metrics import BLEU

    return BLEU()


def _bleu_stats(rows) -> np.ndarray:
    """Each example's n-gram statistics (sacrebleu's), which sum to any subset's corpus BLEU."""
    return np.asarray(_scorer()._extract_corpus_statistics([r["answer"] for r in rows], [[r["reference"] for r in rows]]),
                      dtype=float)


def _bleu(stats: np.ndarray) -> float:
    return float(_scorer()._compute_score_from_stats(list(stats.sum(0))).score)


def slice_quality(rows: list[dict], labels: dict[str, list[str]], *, resamples: int, seed: int) -> dict:
    """``{field: {value: {examples, exact_match, rouge_l, sentence_bleu, bleu, perplexity, <metric>_ci_low/high}}}``
    for one model's rows: means over the slice's examples (corpus BLEU and perplexity over its tokens), intervals by
    resampling the slice's examples."""
    stats = _bleu_stats(rows)
    nll, tokens = np.asarray([r["nll"] for r in rows]), np.asarray([r["tokens"] for r in rows], dtype=float)
    out: dict = {}
    for column, values in labels.items():
        out[column] = {}
        for value, idx in _groups(values).items():
            scores: dict = {"examples": int(idx.size)}
            for key in PER_EXAMPLE:
                x = np.asarray([rows[i][key] for i in idx], dtype=float)
                scores[key] = float(x.mean())
                scores[f"{key}_ci_low"], scores[f"{key}_ci_high"] = metrics.bootstrap_ci(x, resamples=resamples, seed=seed)
            draws = np.random.default_rng(seed).integers(0, idx.size, size=(resamples, idx.size))
            scores["bleu"] = _bleu(stats[idx])
            bleus = [_bleu(stats[idx[d]]) for d in draws]
            scores["bleu_ci_low"], scores["bleu_ci_high"] = float(np.quantile(bleus, 0.025)), float(np.quantile(bleus, 0.975))
            scores["perplexity"] = math.exp(nll[idx].sum() / max(1.0, tokens[idx].sum()))
            ppls = [math.exp(nll[idx[d]].sum() / max(1.0, tokens[idx[d]].sum())) for d in draws]
            scores["perplexity_ci_low"], scores["perplexity_ci_high"] = float(np.quantile(ppls, 0.025)), float(np.quantile(ppls, 0.975))
            out[column][value] = scores
    return out


def compare_slices(candidate: dict, baseline: dict, labels: dict[str, list[str]], *, resamples: int, seed: int) -> dict:
    """``{field: {value: {metric: {candidate, baseline, delta, ci_low, ci_high}}}}``: candidate minus baseline on each
    slice's examples, paired (the same resampled examples for both)."""
    c_stats, b_stats = _bleu_stats(candidate["examples"]), _bleu_stats(baseline["examples"])
    out: dict = {}
    for column, values in labels.items():
        out[column] = {}
        for value, idx in _groups(values).items():
            entry = {"examples": int(idx.size)}
            for key in PER_EXAMPLE:
                c = np.asarray([candidate["examples"][i][key] for i in idx], dtype=float)
                b = np.asarray([baseline["examples"][i][key] for i in idx], dtype=float)
                lo, hi = metrics.paired_delta_ci(c, b, resamples=resamples, seed=seed)
                entry[key] = {"candidate": float(c.mean()), "baseline": float(b.mean()), "delta": float(c.mean() - b.mean()),
                              "ci_low": lo, "ci_high": hi}
            draws = np.random.default_rng(seed).integers(0, idx.size, size=(resamples, idx.size))
            cb, bb = _bleu(c_stats[idx]), _bleu(b_stats[idx])
            deltas = [_bleu(c_stats[idx[d]]) - _bleu(b_stats[idx[d]]) for d in draws]
            entry["bleu"] = {"candidate": cb, "baseline": bb, "delta": cb - bb,
                             "ci_low": float(np.quantile(deltas, 0.025)), "ci_high": float(np.quantile(deltas, 0.975))}
            out[column][value] = entry
    return out


def flat(report: dict) -> dict[str, float]:
    """The slice scalars for a Metrics artifact: ``<model>.slice.<field>=<value>.<metric>`` and
    ``<baseline>.slice_delta.<field>=<value>.<metric>`` (candidate minus baseline)."""
    out: dict[str, float] = {}
    for name, res in report["models"].items():
        for column, groups in res.get("slices", {}).items():
            for value, scores in groups.items():
                for key, v in scores.items():
                    out[f"{name}.slice.{column}={value}.{key}"] = v
    for name, comp in report["comparisons"].items():
        for column, groups in comp.get("slices", {}).items():
            for value, entry in groups.items():
                for key, m in entry.items():
                    if isinstance(m, dict):
                        out[f"{name}.slice_delta.{column}={value}.{key}"] = m["delta"]
    return out
