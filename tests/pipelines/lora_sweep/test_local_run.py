"""lora-sweep on kfp.local: a ParallelFor over LoRA configs, the best adapter kept by validation loss."""

import json
from pathlib import Path

import pytest

from html_check import check_html

from kfp_llmops.local_run import run_local
from kfp_llmops.pipelines.registry import build


@pytest.mark.slow  # ~30 s: in make test-all (its compiled spec is checked by default: tests/pipelines/test_compiled.py)
def test_sweep_trains_each_config_and_keeps_the_lowest_validation_loss(demo_assets, tmp_path, write_jsonl, read_jsonl):
    train = write_jsonl(tmp_path / "train.jsonl", read_jsonl(demo_assets / "train.jsonl")[:200])
    configs = [{"r": 4, "max_steps": 3, "learning_rate": 1e-5, "batch_size": 8},
               {"r": 8, "max_steps": 20, "learning_rate": 3e-3, "batch_size": 8}]
    summary = run_local(build("lora-sweep", "vertex"),
                        {"base_model": str(demo_assets / "base-model"), "train_data": str(train), "configs": configs},
                        tmp_path / "runs")
    assert summary.succeeded, summary.text()
    assert [s.name for s in summary.steps].count("train-lora") >= 1
    best = summary.artifacts("select-best-adapter", "best")[0]["metadata"]
    losses = best["sweep_losses"]
    assert len(losses) == 2 and best["validation_loss"] == min(losses)
    adapter_config = json.loads((summary.run_dir / "select-best-adapter" / "best" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8  # the config that trained long enough to win

    page = Path(summary.artifacts("select-best-adapter", "comparison")[0]["uri"]).read_text()
    check_html(page, plots=1)  # the two loss curves overlaid
    table = Path(summary.artifacts("select-best-adapter", "comparison_table")[0]["uri"]).read_text()
    assert "| config.r | 4 | 8 |" in table and "| config.max_steps | 3 | 20 |" in table and "| validation_loss |" in table
