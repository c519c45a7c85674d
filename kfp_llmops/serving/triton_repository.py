"""A Triton model repository: ``<model>/<version>/model.onnx`` and ``<model>/config.pbtxt``, the layout that
KServe's Triton runtime and our local server both read. The tokenizer and the export report sit at the root (files,
which Triton ignores)."""

from __future__ import annotations

from pathlib import Path

_TYPES = {"tensor(int64)": "TYPE_INT64", "tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(int32)": "TYPE_INT32"}


def config_pbtxt(model_name: str, sess, max_batch_size: int = 8, queue_delay_us: int = 100) -> str:
    """Triton's model config for an ONNX graph whose first axis is the batch: inputs, outputs, dynamic batching."""

    def tensor(t) -> str:
        dims = ", ".join("-1" if not isinstance(d, int) else str(d) for d in t.shape[1:])
        return f'  {{\n    name: "{t.name}"\n    data_type: {_TYPES[t.type]}\n    dims: [ {dims} ]\n  }}'

    return "\n".join([
        f'name: "{model_name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size}",
        "input [",
        ",\n".join(tensor(t) for t in sess.get_inputs()),
        "]",
        "output [",
        ",\n".join(tensor(t) for t in sess.get_outputs()),
        "]",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}",
        'instance_group [ { kind: KIND_AUTO } ]',
        "",
    ])


def write_repository(repo: str | Path, model_name: str, onnx_path: str | Path, sess, version: int = 1) -> Path:
    """Lays out one model in ``repo``; returns the path of its ``model.onnx``."""
    model_dir = Path(repo) / model_name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    from kfp_llmops.onnx_runtime import copy_model

    target = copy_model(onnx_path, model_dir / str(version) / "model.onnx")  # with its external data, if any
    (model_dir / "config.pbtxt").write_text(config_pbtxt(model_name, sess), encoding="utf-8")
    return target


def find_models(repo: str | Path) -> dict[str, Path]:
    """``{model name: path of the highest version's model.onnx}`` in a repository."""
    out = {}
    for model_dir in sorted(p for p in Path(repo).iterdir() if p.is_dir()):
        versions = sorted((int(v.name), v) for v in model_dir.iterdir() if v.is_dir() and v.name.isdigit() and (v / "model.onnx").exists())
        if versions:
            out[model_dir.name] = versions[-1][1] / "model.onnx"
    return out
