import json

from kfp.dsl import Dataset, Markdown

from kfp_llmops.components.evaluation.regression_gate.component import regression_gate


def test_returns_the_decision_and_writes_its_reasons(tmp_path):
    comp = {
        "exact_match": {"candidate": 0.3, "baseline": 0.5, "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1},
        "latency_p95_ms": {"candidate": 10.0, "baseline": 10.0, "ratio": 1.0, "ci_low": 0.9, "ci_high": 1.1},
        "perplexity": {"candidate": 2.0, "baseline": 2.0, "ratio": 1.0},
    }
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "report.json").write_text(json.dumps({"comparisons": {"production": comp}}))
    decision = Markdown(uri=str(tmp_path / "decision"))
    assert regression_gate.python_func(evaluation=Dataset(uri=str(tmp_path / "results")), decision=decision) is False
    assert decision.metadata["passed"] is False
    assert decision.metadata["reasons"][0].startswith("vs production: exact_match: candidate 0.3000 vs 0.5000")
    assert (tmp_path / "decision").read_text().startswith("# Gate: BLOCKED")
