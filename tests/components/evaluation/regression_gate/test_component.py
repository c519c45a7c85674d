from kfp.dsl import Markdown, Metrics

from kfp_llmops.components.evaluation.regression_gate.component import regression_gate


def test_returns_the_decision_and_writes_its_reasons(tmp_path):
    evaluation = Metrics(uri=str(tmp_path / "m"))
    for k, v in {"candidate_exact_match": 0.3, "baseline_exact_match": 0.5, "candidate_perplexity": 2.0, "baseline_perplexity": 2.0}.items():
        evaluation.log_metric(k, v)
    decision = Markdown(uri=str(tmp_path / "decision"))
    assert regression_gate.python_func(evaluation=evaluation, decision=decision) is False
    assert decision.metadata["passed"] is False
    assert decision.metadata["reasons"][0].startswith("exact_match REGRESSION")
    assert (tmp_path / "decision").read_text().startswith("# Gate: BLOCKED")
