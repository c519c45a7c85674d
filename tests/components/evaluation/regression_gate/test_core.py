import pytest

from kfp_llmops.components.evaluation.regression_gate import core
from kfp_llmops.errors import ConfigError, UserInputError


def comparison(c_em=0.60, b_em=0.50, ci=(0.05, 0.15), p95=(20.0, 20.0), p95_ci=(0.9, 1.1), asr=(0.2, 0.2), ppl=(2.0, 2.0)):
    return {
        "exact_match": {"candidate": c_em, "baseline": b_em, "delta": c_em - b_em, "ci_low": ci[0], "ci_high": ci[1]},
        "latency_p95_ms": {"candidate": p95[0], "baseline": p95[1], "ratio": p95[0] / p95[1], "ci_low": p95_ci[0], "ci_high": p95_ci[1]},
        "attack_success_rate": {"candidate": asr[0], "baseline": asr[1]},
        "perplexity": {"candidate": ppl[0], "baseline": ppl[1], "ratio": ppl[0] / ppl[1]},
    }


def blocked(decision):
    return [c.metric for c in decision.blocking]


def test_a_confident_improvement_is_promoted():
    decision = core.decide({"production": comparison()})
    assert decision.passed and len(decision.checks) == 4
    assert decision.markdown().startswith("# Gate: PROMOTE")


def test_a_confident_regression_is_blocked_naming_the_metric():
    decision = core.decide({"production": comparison(c_em=0.40, ci=(-0.15, -0.05))})
    assert blocked(decision) == ["exact_match"] and "REGRESSION" in decision.blocking[0].reason


def test_noise_around_zero_neither_regresses_nor_promotes():
    decision = core.decide({"production": comparison(c_em=0.50, ci=(-0.04, 0.04))})
    assert blocked(decision) == ["exact_match"]
    assert "no confident improvement" in decision.blocking[0].reason


def test_latency_safety_and_perplexity_each_block():
    assert blocked(core.decide({"p": comparison(p95=(30.0, 20.0), p95_ci=(1.3, 1.7))})) == ["latency_p95_ms"]
    assert blocked(core.decide({"p": comparison(asr=(0.3, 0.2))})) == ["attack_success_rate"]
    assert blocked(core.decide({"p": comparison(ppl=(2.2, 2.0))})) == ["perplexity"]


def test_every_baseline_is_checked():
    decision = core.decide({"production": comparison(), "base": comparison(c_em=0.40, ci=(-0.2, -0.1))})
    assert [(c.baseline, c.metric) for c in decision.blocking] == [("base", "exact_match")]


def test_threshold_config_with_an_unknown_metric_is_named():
    with pytest.raises(ConfigError, match=r"GateConfig: unknown field\(s\) \['max_toxicity'\]"):
        core.GateConfig.from_dict({"max_toxicity": 0.1})
    with pytest.raises(ConfigError, match="GateConfig.primary_metric must be one of"):
        core.GateConfig.from_dict({"primary_metric": "accuracy"})
    with pytest.raises(UserInputError, match="lacks"):
        core.decide({"p": {"exact_match": comparison()["exact_match"]}})
