"""The run cost estimate: accelerator-hours times the price table of cost_config."""

import time

import pytest

from kfp_llmops import cost
from kfp_llmops.errors import ConfigError


@pytest.mark.parametrize("device, key", [
    ("NVIDIA L4", "NVIDIA_L4"),
    ("NVIDIA H100 80GB HBM3", "NVIDIA_H100_80GB"),
    ("NVIDIA A100-SXM4-80GB", "NVIDIA_A100_80GB"),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA_TESLA_A100"),
    ("Tesla T4", "NVIDIA_TESLA_T4"),
    ("NVIDIA H200", "NVIDIA_H200_141GB"),
])
def test_cuda_device_names_become_the_price_tables_names(device, key):
    assert cost.accelerator_key(device) == key


def test_steps_are_priced_per_accelerator_hour_and_count():
    cfg = cost.CostConfig.from_dict({"prices_per_hour": {"NVIDIA_L4": 1.0, "cpu": 0.1}, "currency": "EUR"})
    result = cost.estimate([cost.StepUsage("train-lora", 1800, "NVIDIA_L4", 2),
                            cost.StepUsage("evaluate-model", 3600, "NVIDIA_L4", 1),
                            cost.StepUsage("validate-dataset", 360, "cpu", 1)], cfg)
    assert result["accelerator_hours"] == {"NVIDIA_L4": 2.0, "cpu": 0.1}
    assert result["steps"] == {"train-lora": 1.0, "evaluate-model": 1.0, "validate-dataset": 0.01}
    assert result["total"] == pytest.approx(2.01) and result["currency"] == "EUR"
    assert cost.describe(result) == "2.0100 EUR (NVIDIA_L4 2.0000 h, cpu 0.1000 h)"


def test_an_accelerator_without_a_price_is_named_never_priced_as_free():
    result = cost.estimate([cost.StepUsage("train-lora", 3600, "NVIDIA_B200", 8), cost.StepUsage("prep", 3600)],
                           cost.CostConfig())
    assert result["total"] == pytest.approx(cost.DEFAULT_PRICES["cpu"])
    assert result["unpriced"] == ["NVIDIA_B200"] and result["unpriced_steps"] == ["train-lora"]
    assert "not priced (no price for NVIDIA_B200 in cost_config): train-lora" in cost.describe(result)


@pytest.mark.parametrize("values, match", [
    ({"prices_per_hour": {"NVIDIA_L4": -1}}, r"prices_per_hour\['NVIDIA_L4'\] must be a number >= 0"),
    ({"prices_per_hour": {"NVIDIA_L4": "cheap"}}, "must be a number"),
    ({"prices_per_hour": [1, 2]}, "must be a mapping"),
    ({"price": 1}, r"unknown field\(s\) \['price'\]"),
])
def test_bad_cost_config_is_named(values, match):
    with pytest.raises(ConfigError, match=match):
        cost.CostConfig.from_dict(values)


def test_a_step_records_its_usage_for_the_estimate():
    record = cost.usage(time.monotonic() - 2.0)
    assert record["accelerator"] == "cpu" and record["accelerator_count"] == 1  # this machine has no GPU
    assert 2.0 <= record["step_seconds"] < 60
    assert cost.usage_from_metadata("s", record) == cost.StepUsage("s", record["step_seconds"], "cpu", 1)
    assert cost.usage_from_metadata("s", {"sha256": "x"}) is None


def test_cost_config_is_checked_before_the_run():
    from kfp_llmops.preflight import config_errors

    assert config_errors({"cost_config": {"prices_per_hour": {"cpu": -2}}}) == [
        "cost_config: CostConfig.prices_per_hour['cpu'] must be a number >= 0, got -2"]
