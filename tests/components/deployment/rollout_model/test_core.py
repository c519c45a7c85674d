"""The shared analysis and the rollout loop, on recorded numbers (no servers)."""

import pytest

from kfp_llmops.components.deployment.rollout_model import core
from kfp_llmops.deployment.metrics import Scrape, histogram_quantile
from kfp_llmops.errors import ConfigError

A = core.AnalysisConfig()


def stats(requests=100, errors=0, p95=10.0, **custom):
    return core.RevisionStats(requests, errors, p95, custom)


@pytest.mark.parametrize(
    "canary, stable, passed, reason",
    [
        (stats(), stats(), True, "error rate 0.0000 vs stable 0.0000 (limit 0.0000): ok"),
        (stats(p95=17.0), stats(p95=10.0), True, "p95 latency 17.00 ms vs stable 10.00 ms (limit 17.00 ms): ok"),
        (stats(p95=17.1), stats(p95=10.0), False, "p95 latency 17.10 ms vs stable 10.00 ms (limit 17.00 ms): FAIL"),
        (stats(errors=11), stats(errors=10), True, "error rate 0.1100 vs stable 0.1000 (limit 0.1100): ok"),
        (stats(errors=12), stats(errors=10), False, "error rate 0.1200 vs stable 0.1000 (limit 0.1100): FAIL"),
        (stats(errors=1), stats(errors=0), False, "error rate 0.0100 vs stable 0.0000 (limit 0.0000): FAIL"),
        (stats(requests=19), stats(), False, "inconclusive: the canary served 19 requests in the window, fewer than min_requests=20"),
    ],
)
def test_default_rules(canary, stable, passed, reason):
    verdict = core.analyse(canary, stable, A)
    assert verdict.passed is passed
    assert reason in verdict.reasons


def test_custom_query_ratio_and_missing_data():
    cfg = core.AnalysisConfig(custom=({"name": "gpu_util", "query": "q{revision}", "max_ratio": 1.5},))
    assert core.analyse(stats(gpu_util=1.4), stats(gpu_util=1.0), cfg).passed
    assert not core.analyse(stats(gpu_util=1.6), stats(gpu_util=1.0), cfg).passed
    verdict = core.analyse(stats(gpu_util=None), stats(gpu_util=1.0), cfg)
    assert not verdict.passed and "gpu_util: no data (canary None, stable 1.0): FAIL" in verdict.reasons


@pytest.mark.parametrize(
    "values, message",
    [
        ({"schedule": [5, 50]}, "must rise strictly within (0, 100] and end at 100, got [5, 50]"),
        ({"schedule": [50, 10, 100]}, "got [50, 10, 100]"),
        ({"analysis": {"max_p95_latency_ratio": 0.9}}, "AnalysisConfig.max_p95_latency_ratio must be >= 1.0"),
        ({"analysis": {"p99": 1}}, "RolloutConfig.analysis: unknown field(s) ['p99']"),
        ({"windows": 3}, "RolloutConfig: unknown field(s) ['windows']"),
    ],
)
def test_bad_config_is_named(values, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        core.RolloutConfig.from_dict(values)


def test_config_from_kfp_floats():
    cfg = core.RolloutConfig.from_dict({"schedule": [10.0, 100.0], "requests_per_step": 30.0, "analysis": {"min_requests": 5.0},
                                        "vertex": {"machine_type": "n1-standard-4", "accelerator_count": 0.0}})
    assert cfg.schedule == (10, 100) and cfg.requests_per_step == 30 and cfg.analysis.min_requests == 5
    assert (cfg.vertex.machine_type, cfg.vertex.accelerator_count) == ("n1-standard-4", 0)


class Scripted:
    """A target whose canary statistics per step are given; records what the rollout asked of it."""

    def __init__(self, canary_by_step, stable=True, fail_at=None):
        self.canary_by_step, self.stable, self.fail_at = canary_by_step, stable, fail_at
        self.calls = []

    def has_stable(self):
        return self.stable

    def start(self, percent):
        self.calls.append(("start", percent))

    def set_traffic(self, percent):
        if percent == self.fail_at:
            raise RuntimeError("API unavailable")
        self.calls.append(("traffic", percent))

    def wait_ready(self, timeout_s):
        pass

    def observe(self, percent):
        return self.canary_by_step.get(percent, stats()), stats(requests=0) if percent == 100 else stats()

    def rollback(self):
        self.calls.append(("rollback",))

    def promote(self):
        self.calls.append(("promote",))


def test_promotes_after_every_step_and_compares_100_percent_with_the_last_stable_window():
    target = Scripted({100: stats(p95=11.0)})
    result = core.run(target, core.RolloutConfig(), log=lambda _: None)
    assert result.decision == "promoted"
    assert target.calls == [("start", 5), ("traffic", 10), ("traffic", 25), ("traffic", 50), ("traffic", 100), ("promote",)]
    assert "p95 latency 11.00 ms vs stable 10.00 ms (limit 17.00 ms): ok" in result.steps[-1].reasons


def test_rolls_back_at_the_failing_step():
    target = Scripted({25: stats(errors=5)})
    result = core.run(target, core.RolloutConfig(), log=lambda _: None)
    assert result.decision == "rolled_back" and [s.percent for s in result.steps] == [5, 10, 25]
    assert target.calls[-1] == ("rollback",) and ("promote",) not in target.calls
    assert result.reasons[0] == "error rate 0.0500 vs stable 0.0000 (limit 0.0000): FAIL"


def test_an_error_mid_rollout_rolls_back_and_is_raised():
    target = Scripted({}, fail_at=25)
    with pytest.raises(RuntimeError, match="API unavailable"):
        core.run(target, core.RolloutConfig(), log=lambda _: None)
    assert target.calls[-1] == ("rollback",)


def test_first_rollout_goes_straight_to_100_with_the_absolute_rule():
    target = Scripted({}, stable=False)
    result = core.run(target, core.RolloutConfig(), log=lambda _: None)
    assert result.first_rollout and target.calls == [("start", 100), ("promote",)]


def test_histogram_quantile_matches_prometheus():
    # 100 observations: 50 below 1 ms, 45 in (1, 2], 5 in (2, 4]: p95 is the top of the second bucket
    buckets = [(0.001, 50), (0.002, 95), (0.004, 100), (float("inf"), 100)]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.002)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001)
    assert histogram_quantile(0.95, [(0.001, 0), (float("inf"), 0)]) is None


def test_scrape_deltas_per_model():
    text = """# TYPE kfp_llmops_requests counter
kfp_llmops_requests_total{model_name="m",outcome="success"} 10.0
kfp_llmops_requests_total{model_name="m",outcome="error"} 2.0
kfp_llmops_requests_total{model_name="other",outcome="error"} 7.0
# TYPE kfp_llmops_request_seconds histogram
kfp_llmops_request_seconds_bucket{model_name="m",le="0.001"} 6.0
kfp_llmops_request_seconds_bucket{model_name="m",le="0.002"} 12.0
kfp_llmops_request_seconds_bucket{model_name="m",le="+Inf"} 12.0
"""
    before = Scrape(4.0, 0.0, ((0.001, 2.0), (0.002, 4.0), (float("inf"), 4.0)))
    delta = Scrape.parse(text, "m").since(before)
    assert (delta.requests, delta.errors) == (8.0, 2.0)
    assert delta.p95_ms == pytest.approx(1.0 + 1.0 * (7.6 - 4) / 4)


def test_vertex_target_needs_an_endpoint_and_a_vertex_registered_model(tmp_path):
    from kfp.dsl import Dataset, Model

    from kfp_llmops.components.deployment.rollout_model import targets

    common = dict(onnx_model=Model(uri=str(tmp_path)), eval_dataset=Dataset(uri=str(tmp_path)), stable=None,
                  model_name="llm", version="2", namespace="ns", inference_service="llm", storage_uri="gs://b/m",
                  prometheus_url="http://p", work_dir=str(tmp_path / "w"))
    with pytest.raises(ConfigError, match="vertex_endpoint must be projects/P/locations/L/endpoints/E, got 'my-endpoint'"):
        with targets.build("vertex", core.RolloutConfig(), resource="projects/p/locations/l/models/1@2",
                           vertex_endpoint="my-endpoint", **common):
            pass
    with pytest.raises(ConfigError, match="the vertex target needs a model registered in the Vertex AI Model Registry"):
        with targets.build("vertex", core.RolloutConfig(), resource="",
                           vertex_endpoint="projects/p/locations/l/endpoints/7", **common):
            pass
