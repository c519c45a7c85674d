"""The scale ladder on a small row count: every stage runs in its own process and reports wall seconds and peak RSS;
the whole pipeline runs with the ~0.5B-parameter model (fp32 weights over the ONNX limit: external data). Slow
(about 7 minutes on 2 cores); `make scale` runs it at 1M rows."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_scale_ladder_end_to_end(tmp_path, demo_assets):
    env = {**os.environ, "KFP_LLMOPS_BENCH_OUT": str(tmp_path / "bench"), "KFP_LLMOPS_SCALE_WORK": str(tmp_path / "work")}
    done = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--rows", "2000", "--train-rows", "64",
                           "--eval-rows", "8", "--assets", str(demo_assets)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "bench" / "scale.json").read_text())
    stages = report["stages"]
    assert set(stages) == {"data", "validate", "prepare", "model", "pipeline"}
    assert all(s["wall_s"] > 0 and s["peak_rss_mb"] > 0 for s in stages.values())
    assert stages["validate"]["rows_out"] == 2000 and stages["prepare"]["train_rows"] == 1800
    assert 0.45e9 < stages["model"]["parameters"] < 0.55e9 and stages["model"]["bytes"] > 1.8e9
    pipeline = stages["pipeline"]
    assert pipeline["succeeded"] and pipeline["export"]["external_data"] is True
    assert pipeline["export"]["greedy_identical"] == pipeline["export"]["greedy_prompts"]
    assert {"train-lora", "evaluate-model", "export-onnx", "register-model", "rollout-model"} <= set(pipeline["steps_seconds"])
