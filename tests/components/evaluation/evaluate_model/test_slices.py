"""Metrics per slice of the eval set: on rows with known answers, each slice's scores equal the references' own
(sacrebleu's corpus BLEU, rouge-score's ROUGE-L) on that slice's examples; the paired deltas, the fairness rules of the
gate, the report, the model card; end to end on the demo model with a slice field in the eval records."""

import json

import numpy as np
import pytest
import sacrebleu
from html_check import check_html
from rouge_score import rouge_scorer

from kfp_llmops.components.evaluation.evaluate_model import core, metrics, slices
from kfp_llmops.components.evaluation.evaluate_model.report import render_html
from kfp_llmops.components.evaluation.regression_gate.core import GateConfig, decide
from kfp_llmops.components.registry.register_model.core import slice_table
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import load_causal_lm

WORDS = "the cat sat on a mat while dogs ran far away".split()


def rows(answers, references):
    out = []
    for k, (a, r) in enumerate(zip(answers, references)):
        out.append({"index": k, "answer": a, "reference": r, "exact_match": float(a == r),
                    "rouge_l": metrics.rouge_l(a, r), "sentence_bleu": metrics.sentence_bleu(a, r),
                    "nll": 1.0 + k % 3, "tokens": 4})
    return out


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    references = [" ".join(rng.choice(WORDS, 6)) for _ in range(40)]
    good = [r if k % 4 else " ".join(r.split()[::-1]) for k, r in enumerate(references)]  # 1 in 4 wrong
    worse = [r if k % 2 else "nothing at all" for k, r in enumerate(references)]  # 1 in 2 wrong
    labels = {"language": ["en" if k < 30 else "de" for k in range(40)]}
    return {"candidate": {"examples": rows(good, references)}, "production": {"examples": rows(worse, references)},
            "labels": labels, "references": references, "good": good, "worse": worse}


def test_each_slice_scores_what_sacrebleu_and_rouge_score_give_on_its_examples(data):
    got = slices.slice_quality(data["candidate"]["examples"], data["labels"], resamples=200, seed=0)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for value, idx in (("en", range(30)), ("de", range(30, 40))):
        s = got["language"][value]
        answers, refs = [data["good"][i] for i in idx], [data["references"][i] for i in idx]
        assert s["examples"] == len(answers)
        assert s["bleu"] == pytest.approx(sacrebleu.corpus_bleu(answers, [refs]).score, abs=1e-9)
        assert s["rouge_l"] == pytest.approx(np.mean([scorer.score(r, a)["rougeL"].fmeasure for a, r in zip(answers, refs)]))
        assert s["exact_match"] == pytest.approx(np.mean([a == r for a, r in zip(answers, refs)]))
        assert s["perplexity"] == pytest.approx(np.exp(sum(1.0 + i % 3 for i in idx) / (4 * len(answers))))
        for key in ("exact_match", "rouge_l", "bleu", "sentence_bleu", "perplexity"):
            assert s[f"{key}_ci_low"] <= s[key] <= s[f"{key}_ci_high"]


def test_slices_compare_the_candidate_with_a_baseline_on_the_same_examples(data):
    got = slices.compare_slices(data["candidate"], data["production"], data["labels"], resamples=200, seed=0)
    de = got["language"]["de"]
    refs = data["references"][30:]
    assert de["examples"] == 10
    assert de["exact_match"]["delta"] == pytest.approx(np.mean([a == r for a, r in zip(data["good"][30:], refs)])
                                                       - np.mean([a == r for a, r in zip(data["worse"][30:], refs)]))
    assert de["bleu"]["delta"] == pytest.approx(sacrebleu.corpus_bleu(data["good"][30:], [refs]).score
                                                - sacrebleu.corpus_bleu(data["worse"][30:], [refs]).score)
    for m in de.values():
        if isinstance(m, dict):
            assert m["ci_low"] <= m["delta"] <= m["ci_high"]


def gate_input(data, candidate_em=0.75):
    """A comparison with production as the evaluation writes it, slices included."""
    comp = {"exact_match": {"candidate": candidate_em, "baseline": 0.5, "delta": candidate_em - 0.5, "ci_low": 0.1, "ci_high": 0.4},
            "latency_p95_ms": {"candidate": 20.0, "baseline": 20.0, "ratio": 1.0, "ci_low": 0.9, "ci_high": 1.1},
            "perplexity": {"candidate": 2.0, "baseline": 2.0, "ratio": 1.0},
            "slices": slices.compare_slices(data["candidate"], data["production"], data["labels"], resamples=200, seed=0)}
    return {"base": dict(comp), "production": comp}


def test_the_gate_blocks_a_slice_far_below_the_whole_and_names_it(data):
    # the candidate: 0.75 exact match on the whole set (30 of 40); 'en' (rows 0-29) 22 of 30, 'de' 8 of 10
    ok = decide(gate_input(data), GateConfig(max_slice_gap=0.1))
    assert ok.passed and any("fairness, slice language=en (30 examples)" in r for r in ok.reasons)
    tight = decide(gate_input(data), GateConfig(max_slice_gap=0.01))
    assert not tight.passed and [c.metric for c in tight.blocking] == ["slice:language"]
    assert "exact_match 0.7333 vs 0.7500 on the whole set (gap 0.0167, allowed <= 0.0100): GAP TOO WIDE" in tight.blocking[0].reason


def test_the_gate_blocks_a_slice_that_regresses_against_production(data):
    worse = {**data, "candidate": data["production"], "production": data["candidate"]}  # swapped: every slice worse
    decision = decide(gate_input(worse), GateConfig(max_slice_drop=0.05, improve_over=("base",)))
    blocking = [c for c in decision.blocking if c.metric == "slice:language"]
    assert len(blocking) == 1 and blocking[0].baseline == "production"  # against production only, not the base
    assert "REGRESSION on this slice, more than 0.0500 worse" in blocking[0].reason
    assert decide(gate_input(data), GateConfig(max_slice_drop=0.05)).passed


def test_slice_rules_without_slices_and_bad_thresholds_are_named(data):
    comps = gate_input(data)
    for comp in comps.values():
        comp.pop("slices")
    with pytest.raises(UserInputError, match="GateConfig max_slice_gap need slices: set eval_config.slices"):
        decide(comps, GateConfig(max_slice_gap=0.1))
    with pytest.raises(ConfigError, match="max_slice_drop must be a number >= 0"):
        GateConfig.from_dict({"max_slice_drop": -1})
    with pytest.raises(ConfigError, match="EvalConfig.slices must be a list of field names"):
        core.EvalConfig.from_dict({"slices": [3]})


def test_an_eval_set_without_the_slice_field_is_named(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps({"instruction": "a", "response": "b", "language": "en"}) + "\n"
                    + json.dumps({"instruction": "c", "response": "d"}) + "\n")
    pairs, labels = core.read_eval_set(str(path), core.EvalConfig(slices=("language",)))
    assert pairs == [("a", "b"), ("c", "d")] and labels == {"language": ["en", slices.MISSING]}
    with pytest.raises(UserInputError, match=r"eval_config.slices names 'tier', which the eval set at .*eval.jsonl does not have"):
        core.read_eval_set(str(path), core.EvalConfig(slices=("tier",)))


def test_slices_end_to_end_on_the_demo_model(base_model, tokenizer, demo_assets, tmp_path):
    """Records carry a ``length`` field: every metric per slice, in the flat metrics, the report and the model card."""
    records = [json.loads(line) for line in (demo_assets / "eval.jsonl").read_text().splitlines()[:12]]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({**r, "length": "short" if len(r["instruction"]) < 30 else "long"}) + "\n"
                            for r in records))
    cfg = core.EvalConfig(latency_requests=4, latency_tokens=4, bootstrap_resamples=100, golden_prompts=2, safety=False,
                          slices=("length",))
    pairs, labels = core.read_eval_set(str(path), cfg)
    model = load_causal_lm(base_model)
    report = core.evaluate_all(model, {"base": model}, tokenizer, pairs, cfg, slices=labels)
    whole = report["models"]["candidate"]["quality"]
    rows = report["models"]["candidate"]["examples"]
    assert whole["bleu"] == pytest.approx(sacrebleu.corpus_bleu([r["answer"] for r in rows], [[r["reference"] for r in rows]]).score)
    per = report["models"]["candidate"]["slices"]["length"]
    assert sum(s["examples"] for s in per.values()) == 12
    flat = core.flat_metrics(report)
    for value in per:
        assert f"candidate.slice.length={value}.exact_match" in flat and f"base.slice_delta.length={value}.exact_match" in flat
        assert flat[f"base.slice_delta.length={value}.exact_match"] == 0.0  # the same model on both sides
    page = render_html(report, decide(report["comparisons"], GateConfig(min_improvement=0.0, max_slice_gap=1.0)))
    check_html(page, plots=2)  # the deltas, and the metric per slice
    assert "<h2>Slices</h2>" in page and "fairness, slice length=" in page
    card = "\n".join(slice_table(flat))
    assert card.startswith("| slice | examples | exact_match (95% CI) | vs base |") and "length=" in card
