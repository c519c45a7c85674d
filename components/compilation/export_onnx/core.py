"""Merges a LoRA adapter into its base model, exports it to ONNX and checks parity in onnxruntime; no kfp."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kfp_llmops.errors import ConfigError, UserInputError

MODEL_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits",)


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18
    parity_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.opset < 14:
            raise ConfigError(f"ExportConfig.opset must be >= 14, got {self.opset}")
        if self.parity_tolerance <= 0:
            raise ConfigError(f"ExportConfig.parity_tolerance must be > 0, got {self.parity_tolerance}")


def merge_adapter(base_model: str, adapter_dir: str):
    """Base model with the adapter's weights folded in (a plain ``transformers`` model again)."""
    from kfp_llmops.components.evaluation.evaluate_model.core import load_candidate

    return load_candidate(base_model, adapter_dir, merge=True)


def logits_module(model):
    """Wraps a causal LM so that the traced graph takes (input_ids, attention_mask) and returns logits."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return LogitsOnly(model)


def export(model, out_dir: str | Path, cfg: ExportConfig | None = None) -> Path:
    import torch

    cfg = cfg or ExportConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL_FILE
    ids = torch.randint(0, model.config.vocab_size, (2, 8))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # trace with left padding, so that no "no padding" shortcut is baked into the graph
    with torch.no_grad():
        torch.onnx.export(
            logits_module(model),
            (ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in (*INPUT_NAMES, *OUTPUT_NAMES)},
            opset_version=cfg.opset,
            dynamo=False,
        )
    return path


def parity(model, onnx_path: str | Path, token_batches) -> float:
    """Largest absolute logit difference between torch and onnxruntime over unmasked positions."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    wrapped = logits_module(model)
    for ids, mask in token_batches:
        with torch.no_grad():
            ref = wrapped(torch.as_tensor(ids), torch.as_tensor(mask)).numpy()
        got = session.run(list(OUTPUT_NAMES), {"input_ids": np.asarray(ids, np.int64), "attention_mask": np.asarray(mask, np.int64)})[0]
        keep = np.asarray(mask).astype(bool)
        worst = max(worst, float(np.abs(ref - got)[keep].max()))
    return worst


def parity_batches(tokenizer, prompts: list[str]):
    """Token batches for the parity check: each prompt alone, and all of them left-padded together."""
    tokenizer.padding_side = "left"
    alone = [tokenizer([p], return_tensors="np", add_special_tokens=False) for p in prompts]
    together = tokenizer(prompts, return_tensors="np", padding=True, add_special_tokens=False)
    return [(e["input_ids"], e["attention_mask"]) for e in (*alone, together)]


def export_with_parity(model, tokenizer, prompts: list[str], out_dir: str | Path, cfg: ExportConfig | None = None) -> dict:
    """Exports, checks parity and saves the tokenizer beside the graph; raises with the measured difference."""
    cfg = cfg or ExportConfig()
    path = export(model, out_dir, cfg)
    diff = parity(model, path, parity_batches(tokenizer, prompts))
    if diff > cfg.parity_tolerance:
        raise UserInputError(
            f"ONNX parity check failed: max |logits torch - onnxruntime| = {diff:.3g} > tolerance {cfg.parity_tolerance:.3g}"
        )
    tokenizer.save_pretrained(out_dir)
    info = {"opset": cfg.opset, "max_abs_logit_diff": diff, "precision": "fp32", "size_bytes": path.stat().st_size}
    (Path(out_dir) / "export.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
