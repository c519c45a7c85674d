"""The benchmarks run (on a small size) and write the shared result format; no timing is asserted."""

import json
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
FIELDS = {"name", "metric", "unit", "ours", "baseline", "baseline_name", "ratio", "goal", "details"}


def test_validate_benchmark_writes_the_result_format(tmp_path, monkeypatch):
    monkeypatch.setenv("KFP_LLMOPS_BENCH_OUT", str(tmp_path))
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["validate.py", "--rows", "2000", "--repeats", "1"])
    for name in ("common", "validate"):
        sys.modules.pop(name, None)
    try:
        runpy.run_path(str(BENCH / "validate.py"), run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0
    result = json.loads((tmp_path / "validate.json").read_text())
    assert set(result) == FIELDS
    assert result["details"]["rows"] == 2000
    assert result["ratio"] == result["baseline"] / result["ours"]


def test_eval_benchmark_writes_the_result_format(tmp_path, monkeypatch, demo_assets):
    monkeypatch.setenv("KFP_LLMOPS_BENCH_OUT", str(tmp_path))
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["eval.py", "--assets", str(demo_assets), "--examples", "8", "--repeats", "1"])
    for name in ("common", "eval"):
        sys.modules.pop(name, None)
    try:
        runpy.run_path(str(BENCH / "eval.py"), run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result) == FIELDS
    assert result["details"]["identical_answers"] == 8  # same answers both ways
    assert result["ratio"] == result["ours"] / result["baseline"]


def test_serve_benchmark_writes_the_result_format(tmp_path, monkeypatch, demo_assets):
    monkeypatch.setenv("KFP_LLMOPS_BENCH_OUT", str(tmp_path))
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["serve.py", "--assets", str(demo_assets), "--repeats", "1", "--new-tokens", "4", "--skip-large"])
    for name in ("common", "serve"):
        sys.modules.pop(name, None)
    try:
        runpy.run_path(str(BENCH / "serve.py"), run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0
    names = sorted(p.stem for p in tmp_path.glob("*.json"))
    assert names == ["serve-forward-demo", "serve-generate-b1-demo", "serve-generate-b8-demo"]
    for name in names:
        assert set(json.loads((tmp_path / f"{name}.json").read_text())) == FIELDS


def test_train_benchmark_writes_the_result_format(tmp_path, monkeypatch):
    monkeypatch.setenv("KFP_LLMOPS_BENCH_OUT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["train.py", "--steps", "2", "--batch", "16"])
    for name in ("common", "train"):
        sys.modules.pop(name, None)
    try:
        runpy.run_path(str(BENCH / "train.py"), run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0
    result = json.loads((tmp_path / "train.json").read_text())
    assert set(result) == FIELDS
    details = result["details"]
    assert details["padding_efficiency_ours"] > details["padding_efficiency_baseline"]
    assert abs(details["eval_loss_ours"] - details["eval_loss_baseline"]) / details["eval_loss_baseline"] < 0.01
