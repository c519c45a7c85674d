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


def test_a_confident_improvement_over_base_is_promoted_and_the_missing_production_is_said():
    decision = core.decide({"base": comparison()})
    assert decision.passed and len(decision.checks) == 5
    assert decision.markdown().startswith("# Gate: PROMOTE")
    assert "no production version to compare with" in decision.checks[0].reason


def test_noise_around_zero_over_base_does_not_promote():
    decision = core.decide({"base": comparison(c_em=0.50, ci=(-0.04, 0.04))})
    assert blocked(decision) == ["exact_match"]
    assert "no confident improvement" in decision.blocking[0].reason


def test_production_gets_the_regression_rules_not_the_improvement_rule():
    # the candidate is 1 point behind production (within the 2-point allowance): promoted
    close = {"base": comparison(), "production": comparison(c_em=0.60, b_em=0.61, ci=(-0.06, 0.04))}
    assert core.decide(close).passed
    # 26 points behind production, though far better than base: blocked, on production's exact match only
    worse = core.decide({"base": comparison(c_em=0.33, b_em=0.0, ci=(0.24, 0.42)),
                         "production": comparison(c_em=0.33, b_em=0.59, ci=(-0.36, -0.16))})
    assert [(c.baseline, c.metric) for c in worse.blocking] == [("production", "exact_match")]
    assert "REGRESSION, more than 0.0200 worse" in worse.blocking[0].reason
    # 3 points behind with a CI that spans zero: still more than the allowed 2 points (point estimate)
    assert blocked(core.decide({"base": comparison(), "production": comparison(c_em=0.58, b_em=0.61, ci=(-0.1, 0.04))})) == ["exact_match"]


def test_production_must_also_be_beaten_when_configured():
    cfg = core.GateConfig.from_dict({"improve_over": ["base", "production"]})
    tie = {"base": comparison(), "production": comparison(c_em=0.60, b_em=0.60, ci=(-0.05, 0.05))}
    assert [(c.baseline, c.metric) for c in core.decide(tie, cfg).blocking] == [("production", "exact_match")]


def test_latency_safety_and_perplexity_each_block_against_production():
    def gate(**kw):
        return blocked(core.decide({"base": comparison(), "production": comparison(c_em=0.6, b_em=0.6, **kw)}))

    assert gate(p95=(30.0, 20.0), p95_ci=(1.3, 1.7)) == ["latency_p95_ms"]
    assert gate(p95=(21.0, 20.0), p95_ci=(0.95, 1.2)) == []  # not confidently over 10 % slower
    assert gate(asr=(0.3, 0.2)) == ["attack_success_rate"]
    assert gate(ppl=(2.2, 2.0)) == ["perplexity"]


def test_threshold_config_with_an_unknown_metric_is_named():
    with pytest.raises(ConfigError, match=r"GateConfig: unknown field\(s\) \['max_toxicity'\]"):
        core.GateConfig.from_dict({"max_toxicity": 0.1})
    with pytest.raises(ConfigError, match="GateConfig.primary_metric must be one of"):
        core.GateConfig.from_dict({"primary_metric": "accuracy"})
    with pytest.raises(ConfigError, match="GateConfig.max_primary_drop must be a number >= 0, got -0.1"):
        core.GateConfig.from_dict({"max_primary_drop": -0.1})
    with pytest.raises(ConfigError, match="GateConfig.improve_over must be a list of baseline names"):
        core.GateConfig.from_dict({"improve_over": [1]})
    with pytest.raises(UserInputError, match="lacks"):
        core.decide({"p": {"exact_match": comparison()["exact_match"]}})
