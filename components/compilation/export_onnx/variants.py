"""Optimization variants of an exported model, each measured: onnxruntime's offline graph optimizations (the
transformer fusions: RMSNorm/SkipLayerNorm, attention and GELU patterns where they match) and dynamic int8
quantization of the weights, with latency, size and perplexity change against the fp32 export."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfp_llmops.errors import ConfigError

VARIANTS = ("fp32", "ort-optimized", "int8-dynamic")


@dataclass(frozen=True)
class VariantConfig:
    max_perplexity_increase: float = 0.05  # the accuracy budget: relative to the fp32 export
    latency_runs: int = 20

    def __post_init__(self) -> None:
        if self.max_perplexity_increase < 0 or self.latency_runs <= 0:
            raise ConfigError("VariantConfig: max_perplexity_increase must be >= 0 and latency_runs > 0")


def make_variants(fp32_path: Path, out_dir: Path, external: bool = False) -> dict[str, Path]:
    """``external``: the weights live in external data files (a model over 2 GB), and so do the variants'."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"fp32": fp32_path}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(out_dir / "ort-optimized.onnx")
    if external:
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "ort-optimized.onnx.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"])
    paths["ort-optimized"] = out_dir / "ort-optimized.onnx"
    # its default op list, less "Attention": the quantizer takes ONNX's own Attention op (opset 23, the torch.export
    # exporter's) for the com.microsoft one and writes a QAttention node that does not load
    ops = [op for op in IntegerOpsRegistry if op != "Attention"]
    quantize_dynamic(str(fp32_path), str(out_dir / "int8-dynamic.onnx"), weight_type=QuantType.QInt8,
                     use_external_data_format=external, op_types_to_quantize=ops)
    paths["int8-dynamic"] = out_dir / "int8-dynamic.onnx"
    return paths


def onnx_perplexity(sess, tokenizer, pairs, max_length: int = 256, batch_size: int = 16, fmt=None) -> float:
    """Perplexity of the final assistant turn of each record in the prompt format (plain when not given)."""
    from kfp_llmops.onnx_runtime import layout_of
    from kfp_llmops.modeling import collate
    from kfp_llmops.prompts import PromptFormat

    layout = layout_of(sess)
    examples = (fmt or PromptFormat()).encode_many(tokenizer, pairs, max_length, last_only=True)
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.numpy() for k, v in collate(examples[start : start + batch_size], tokenizer.pad_token_id).items()}
        logits = sess.run(["logits"], {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                                       **layout.empty_past(batch["input_ids"].shape[0])})[0][:, :-1]
        labels = batch["labels"][:, 1:]
        keep = labels != -100
        logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        picked = np.take_along_axis(logits, np.where(keep, labels, 0)[..., None], -1)[..., 0]
        total += float((logz - picked)[keep].sum())
        count += int(keep.sum())
    return math.exp(total / max(1, count))


def forward_latency_ms(sess, batch: int = 1, sequence: int = 32, runs: int = 20) -> float:
    from kfp_llmops.onnx_runtime import layout_of

    layout = layout_of(sess)
    feeds = {"input_ids": np.full((batch, sequence), 5, np.int64), "attention_mask": np.ones((batch, sequence), np.int64),
             **layout.empty_past(batch)}
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure(paths: dict[str, Path], tokenizer, pairs, cfg: VariantConfig, fmt=None) -> dict[str, dict]:
    """Per variant: size (with external data), forward latency (batch 1, sequence 32), perplexity and its change
    against fp32, promotable."""
    from kfp_llmops.onnx_runtime import external_files, session

    out = {}
    for name, path in paths.items():
        sess = session(path)
        size = Path(path).stat().st_size + sum(f.stat().st_size for f in external_files(path))
        out[name] = {"size_bytes": size, "latency_ms": forward_latency_ms(sess, runs=cfg.latency_runs),
                     "perplexity": onnx_perplexity(sess, tokenizer, pairs, fmt=fmt)}
    base = out["fp32"]
    for name, m in out.items():
        m["perplexity_change"] = m["perplexity"] / base["perplexity"] - 1
        m["size_reduction"] = 1 - m["size_bytes"] / base["size_bytes"]
        m["speedup"] = base["latency_ms"] / m["latency_ms"]
        m["within_budget"] = m["perplexity_change"] <= cfg.max_perplexity_increase
    return out


def promote(measured: dict[str, dict]) -> str:
    """The fastest variant within the accuracy budget (fp32 always is)."""
    return min((n for n, m in measured.items() if m["within_budget"]), key=lambda n: measured[n]["latency_ms"])
