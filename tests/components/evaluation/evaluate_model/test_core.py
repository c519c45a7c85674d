import time

import numpy as np
import pytest

from kfp_llmops.adapters import load_adapted
from kfp_llmops.components.evaluation.evaluate_model import core, metrics
from kfp_llmops.components.evaluation.regression_gate.core import GateConfig, decide
from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import load_causal_lm

FAST = core.EvalConfig(latency_requests=6, latency_tokens=8, bootstrap_resamples=300, golden_prompts=5)


@pytest.fixture(scope="module")
def pairs(demo_assets):
    return instruction_pairs(read_jsonl(demo_assets / "eval.jsonl"))[:16]


@pytest.fixture(scope="module")
def untrained_adapter(base_model, tmp_path_factory):
    """A LoRA adapter straight after initialisation: B is zero, so it must not change any answer."""
    out = tmp_path_factory.mktemp("adapter")
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def base_report(base_model, tokenizer, pairs):
    return core.evaluate_models({"base": load_causal_lm(base_model)}, tokenizer, pairs, FAST)["base"]


def test_base_model_scores(base_report):
    q = base_report["quality"]
    assert q["examples"] == 16 and q["exact_match"] == 0.0  # the base model was never shown reversal
    assert 1.0 < q["perplexity"] < 50.0 and 0.0 < q["rouge_l"] < 1.0 and 0.0 <= q["ece"] <= 1.0
    s = base_report["speed"]
    assert len(s["latency_ms"]) == 6 and s["latency_p95_ms"] >= s["latency_p50_ms"] > 0
    assert s["tokens_per_s_batch8"] > 0 and s["cost_per_1k_tokens"] > 0 and s["peak_rss_mb"] > 0
    assert base_report["safety"]["attacks_succeeded"] == round(base_report["safety"]["attack_success_rate"] * 9)


def test_quality_metrics_are_deterministic(base_model, tokenizer, pairs, base_report):
    again, rows = core.evaluate_quality(load_causal_lm(base_model), tokenizer, pairs, FAST)
    assert again == base_report["quality"]
    assert [r["answer"] for r in rows] == [r["answer"] for r in base_report["examples"]]


def test_an_untrained_adapter_scores_exactly_like_its_base(base_model, tokenizer, pairs, untrained_adapter, base_report):
    cand = core.evaluate_models({"c": load_adapted(base_model, untrained_adapter, merge=True)}, tokenizer, pairs, FAST)["c"]
    assert [r["answer"] for r in cand["examples"]] == [r["answer"] for r in base_report["examples"]]
    comp = core.compare(cand, base_report, FAST)
    assert comp["exact_match"]["delta"] == 0.0 and comp["golden_changed"] == []
    assert comp["perplexity"]["ratio"] == pytest.approx(1.0, abs=1e-5)


def test_a_damaged_candidate_is_blocked_on_the_task_metric(base_model, tokenizer, pairs, untrained_adapter, base_report):
    import torch

    damaged = load_adapted(base_model, untrained_adapter)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in damaged.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)  # adapter weights scaled to noise
    report = core.evaluate_all(damaged.merge_and_unload(), {"base": load_causal_lm(base_model)}, tokenizer, pairs, FAST)
    decision = decide(report["comparisons"])
    assert not decision.passed
    assert "exact_match" in {c.metric for c in decision.blocking}
    assert report["models"]["candidate"]["quality"]["perplexity"] > base_report["quality"]["perplexity"]


def test_a_slower_candidate_is_blocked_on_latency(base_model, tokenizer, pairs, base_report):
    slow = load_causal_lm(base_model)
    plain = slow.generate

    def delayed(*args, **kwargs):
        start = time.perf_counter()
        out = plain(*args, **kwargs)
        # three times as slow as the same call, whatever else the machine is doing (a fixed delay drowned in the
        # base's own latency when the host was busy)
        time.sleep(2 * (time.perf_counter() - start) + 0.02)
        return out

    slow.generate = delayed
    report = core.evaluate_all(slow, {"base": load_causal_lm(base_model)}, tokenizer, pairs, FAST)
    decision = decide(report["comparisons"], GateConfig(min_improvement=0.0))
    assert [c.metric for c in decision.blocking] == ["latency_p95_ms"]
    assert "REGRESSION" in decision.blocking[0].reason


def test_bootstrap_interval_narrows_as_the_set_grows():
    rng = np.random.default_rng(0)
    small = metrics.bootstrap_ci(rng.integers(0, 2, 50))
    large = metrics.bootstrap_ci(rng.integers(0, 2, 2000))
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3
    assert metrics.bootstrap_ci([1, 0, 1, 1], seed=3) == metrics.bootstrap_ci([1, 0, 1, 1], seed=3)


def test_metric_functions():
    assert metrics.rouge_l("a b d c", "a b c d") == pytest.approx(0.75)
    assert metrics.sentence_bleu("a b c d", "a b c d") == pytest.approx(100.0)
    assert metrics.expected_calibration_error([1.0, 1.0, 0.0], [1, 1, 0]) == 0.0
    assert metrics.expected_calibration_error([0.9, 0.9], [0, 0]) == pytest.approx(0.9)


def test_bad_inputs_fail_early_with_the_problem(base_model, tokenizer, tmp_path):
    with pytest.raises(UserInputError, match="evaluation set is empty"):
        core.evaluate_quality(load_causal_lm(base_model), tokenizer, [], FAST)
    with pytest.raises(UserInputError, match=r"baseline model '/no/such/model': no such path"):
        core.load_baseline("/no/such/model")
    from kfp_llmops.demo.assets import train_tokenizer

    other = train_tokenizer(["completely different words here"] * 10, 280)
    with pytest.raises(UserInputError, match=r"the tokenizer of baseline 'prod' differs from the candidate's"):
        core.check_same_tokenizer(tokenizer, other, "prod")
    with pytest.raises(ConfigError, match=r"EvalConfig: unknown field\(s\) \['latency'\]"):
        core.EvalConfig.from_dict({"latency": 3})
