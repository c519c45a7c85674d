"""benchmarks/gpu.py's CPU-side logic: arguments, the status file without a GPU, the result format of each suite run
on a tiny model on the CPU, and the per-GPU bf16 peaks. Nothing here is a GPU figure."""

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
FIELDS = {"name", "metric", "unit", "ours", "baseline", "baseline_name", "ratio", "goal", "details"}


def run_gpu(argv, out, monkeypatch) -> int:
    monkeypatch.setenv("KFP_LLMOPS_BENCH_OUT", str(out))
    monkeypatch.chdir(out)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["gpu.py", *argv])
    for name in ("common", "gpu"):
        sys.modules.pop(name, None)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(BENCH / "gpu.py"), run_name="__main__")
    return exc.value.code


def test_without_a_gpu_nothing_is_measured_and_the_status_says_so(tmp_path, monkeypatch):
    assert run_gpu([], tmp_path, monkeypatch) == 0
    status = json.loads((tmp_path / "gpu-status.json").read_text())
    assert status["measured"] is False and status["reason"].startswith("no CUDA device")
    assert run_gpu(["--require-gpu"], tmp_path, monkeypatch) == 3
    assert not list(tmp_path.glob("*-gpu.json"))


def test_each_suite_runs_on_a_tiny_model_and_writes_the_shared_format(tmp_path, monkeypatch):
    code = run_gpu(["--device", "cpu", "--size", "tiny", "--steps", "2", "--batch", "4", "--seq", "32",
                    "--new-tokens", "4"], tmp_path, monkeypatch)
    status = json.loads((tmp_path / "gpu-status.json").read_text())
    assert code == 1 and set(status["errors"]) == {"qlora"}  # nf4 needs CUDA: recorded, the other suites ran
    assert "needs a CUDA GPU" in status["errors"]["qlora"] and status["measured"] is False
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*-gpu.json")}
    assert {"forward-ort-gpu", "generate-b1-eager-gpu", "generate-b8-eager-gpu", "train-vs-trl-gpu"} <= set(results)
    assert all(set(r) == FIELDS for r in results.values())
    assert results["train-vs-trl-gpu"]["ours"] > 0 and results["train-vs-trl-gpu"]["baseline"] > 0


@pytest.mark.parametrize("argv", [["--suites", "forward,warp"], ["--steps", "0"], ["--size", "70b"]])
def test_bad_arguments_are_refused(argv, tmp_path, monkeypatch):
    assert run_gpu(argv, tmp_path, monkeypatch) == 2


def test_bf16_peaks_by_device_name(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("gpu", None)
    import gpu

    assert gpu.peak_flops("NVIDIA H200") == gpu.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu.peak_flops("NVIDIA L4") == 121e12 and gpu.peak_flops("NVIDIA L40S") == 362e12
    assert gpu.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12 and gpu.peak_flops("Some Future GPU") is None
