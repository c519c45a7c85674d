import pytest

from kfp_llmops.components.evaluation.regression_gate import core
from kfp_llmops.errors import ConfigError, UserInputError


def scores(c_em, b_em, c_ppl=2.0, b_ppl=2.0):
    return {"candidate_exact_match": c_em, "baseline_exact_match": b_em, "candidate_perplexity": c_ppl, "baseline_perplexity": b_ppl}


def test_a_better_candidate_is_promoted_with_reasons():
    decision = core.decide(scores(0.57, 0.0, 1.1, 8.1))
    assert decision.passed
    assert decision.reasons[0].startswith("exact_match ok: candidate 0.5700 vs baseline 0.0000")
    assert decision.markdown().startswith("# Gate: PROMOTE")


def test_an_exact_match_regression_is_blocked_and_named():
    decision = core.decide(scores(0.40, 0.50))
    assert not decision.passed
    assert decision.reasons[0].startswith("exact_match REGRESSION")
    assert decision.reasons[1].startswith("perplexity ok")


def test_no_gain_is_not_enough_by_default():
    assert not core.decide(scores(0.5, 0.5)).passed
    assert core.decide(scores(0.5, 0.5), core.GateConfig(min_exact_match_gain=0.0)).passed


def test_a_perplexity_rise_is_blocked():
    decision = core.decide(scores(0.9, 0.5, c_ppl=3.0, b_ppl=2.0), core.GateConfig(max_perplexity_ratio=1.2))
    assert not decision.passed
    assert decision.reasons[1] == "perplexity REGRESSION: candidate 3.0000 vs baseline 2.0000 (ratio 1.5000, allowed <= 1.2000)"


def test_missing_metrics_and_bad_config_are_named():
    with pytest.raises(UserInputError, match="lack \\['baseline_perplexity'\\]"):
        core.decide({k: v for k, v in scores(1, 0).items() if k != "baseline_perplexity"})
    with pytest.raises(ConfigError, match="max_perplexity_ratio"):
        core.GateConfig(max_perplexity_ratio=0)
