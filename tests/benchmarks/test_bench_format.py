"""The benchmarks run (on a small size) and write the shared result format; no timing is asserted."""

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
FIELDS = {"name", "metric", "unit", "ours", "baseline", "baseline_name", "ratio", "goal", "details"}


def run_bench(script: str, argv: list[str], out: Path, monkeypatch) -> dict[str, dict]:
    """Runs ``benchmarks/<script>.py`` with ``argv``, results under ``out``; returns them by name."""
    monkeypatch.setenv("KFP_LLMOPS_BENCH_OUT", str(out))
    monkeypatch.chdir(out)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    for name in ("common", script):
        sys.modules.pop(name, None)
    try:
        runpy.run_path(str(BENCH / f"{script}.py"), run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert results and all(set(r) == FIELDS for r in results.values())
    return results


def test_validate_benchmark(tmp_path, monkeypatch):
    result = run_bench("validate", ["--rows", "2000", "--repeats", "1"], tmp_path, monkeypatch)["validate"]
    assert result["details"]["rows"] == 2000
    assert result["ratio"] == result["baseline"] / result["ours"]


def test_eval_benchmark(tmp_path, monkeypatch, demo_assets):
    result = run_bench("eval", ["--assets", str(demo_assets), "--examples", "8", "--repeats", "1"], tmp_path, monkeypatch)["eval"]
    assert result["details"]["identical_answers"] == 8  # same answers both ways
    assert result["ratio"] == result["ours"] / result["baseline"]


@pytest.mark.slow  # ~20 s: in make test-all; `make bench` runs it at full size
def test_serve_benchmark(tmp_path, monkeypatch, demo_assets):
    argv = ["--assets", str(demo_assets), "--repeats", "1", "--new-tokens", "4", "--skip-large"]
    results = run_bench("serve", argv, tmp_path, monkeypatch)
    assert sorted(results) == ["serve-forward-demo", "serve-forward-int8-demo", "serve-generate-b1-demo", "serve-generate-b8-demo",
                               "serve-generate-genai-b1-demo", "serve-generate-genai-b8-demo",
                               "serve-generate-genai-builder-export-b1-demo", "serve-generate-genai-builder-export-b8-demo",
                               "serve-generate-genai-quantized-b1-demo", "serve-generate-genai-quantized-b8-demo",
                               "serve-generate-genai-torch-export-b1-demo", "serve-generate-genai-torch-export-b8-demo"]
    genai = results["serve-generate-genai-b8-demo"]  # onnxruntime-genai's builder and loop on the same weights
    assert genai["details"]["theirs"] == "fp32" and genai["baseline_name"].startswith("onnxruntime-genai 0.18")


@pytest.mark.slow  # ~30 s: in make test-all; `make bench` runs it at full size
def test_train_benchmark(tmp_path, monkeypatch):
    results = run_bench("train", ["--steps", "2", "--batch", "16", "--skip-compiled"], tmp_path, monkeypatch)
    assert "train-compiled" not in results
    trl = results["train-vs-trl"]["details"]  # TRL SFTTrainer on the same examples, steps and schedule
    assert trl["examples"] == 32 and trl["trl_batch_rows"] * 2 >= trl["trl_packed_rows"]
    assert abs(trl["eval_loss_ratio"] - 1) < 0.01 and {"mfu_ours", "mfu_baseline", "mfu_hf_trainer"} <= set(trl)
    details = results["train"]["details"]
    assert details["padding_efficiency_ours"] > details["padding_efficiency_baseline"]
    assert abs(details["eval_loss_ours"] - details["eval_loss_baseline"]) / details["eval_loss_baseline"] < 0.01
    assert details["flops_per_token"] == trl["flops_per_token"] and details["mfu_ours"] == trl["mfu_ours"]


@pytest.mark.slow  # torch.compile of the layers' forward and backward: a minute or two
def test_train_benchmark_compiled_row(tmp_path, monkeypatch):
    compiled = run_bench("train", ["--steps", "3", "--batch", "8"], tmp_path, monkeypatch)["train-compiled"]
    details = compiled["details"]
    assert details["max_loss_difference"] < 1e-4 and details["first_step_s"] > details["first_step_s_eager"]
    assert compiled["ratio"] == compiled["ours"] / compiled["baseline"]


def test_lora_training_flops(monkeypatch):
    """MFU's model FLOPs, counted by hand on a one-layer Llama: 4 per frozen weight, 6 per adapter weight, none for the
    embedding, and causal attention per document."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("common", None)
    from common import lora_training_flops

    config = LlamaConfig(vocab_size=10, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1)
    model = LlamaForCausalLM(config)
    base = 16 * 16 * 2 + 16 * 8 * 2 + 16 * 24 * 3 + 16 * 10  # q, o; k, v (one KV head of 8); gate, up, down; lm_head
    attention = 6 * 16 * (3 * 4 + 5 * 6)  # documents of 3 and 5 tokens
    assert lora_training_flops(model, [3, 5]) == 6 * base * 8 + attention  # full fine-tuning: every weight trains
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert lora_training_flops(lora, [3, 5]) == (4 * base + 6 * 2 * (16 + 16)) * 8 + attention


@pytest.mark.slow  # ~30 s (merges and three server processes): in make test-all; `make bench-adapters` at 0.5B
def test_adapter_serving_benchmark(tmp_path, monkeypatch, demo_assets):
    monkeypatch.setenv("KFP_LLMOPS_SCALE_WORK", str(tmp_path / "work"))
    (tmp_path / "out").mkdir()
    sys.modules.pop("scale", None)
    results = run_bench("adapter_serving", ["--base", str(demo_assets / "base-model"), "--versions", "2"],
                        tmp_path / "out", monkeypatch)
    assert set(results) == {"adapter-bytes-per-version", "adapter-serving-memory"}
    size = results["adapter-bytes-per-version"]
    assert size["ours"] == size["details"]["per_version"]["adapter_bytes"] and size["details"]["versions"] == 2
    memory = results["adapter-serving-memory"]["details"]
    assert memory["adapters_on_one_base"]["processes"] == 1 and memory["merged_models"]["processes"] == 2
