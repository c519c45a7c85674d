"""onnxruntime-genai's model builder as an export backend (``ExportConfig(exporter="onnxruntime-genai")``); never
imports kfp.

The builder (``python -m onnxruntime_genai.models.builder``, offline on a local Hugging Face folder) writes a graph of
fused contrib ops: one ``GroupQueryAttention`` per layer on packed QKV with rotary embeddings inside it, and
``SkipSimplifiedLayerNormalization``, about 50 nodes for a 4-layer Llama where our exporters leave 150. Its graph takes
the same inputs and returns the same outputs as ours, but its attention reads each row's length from the attention
mask as if batches were right-padded (``seqlens_k = sum(mask) - 1``), so a left-padded batch, which is what our
generation loop, Triton and KServe send, gets wrong logits. :func:`serve_left_padded` rewrites that with onnx-ir:
every row's ``seqlens_k`` becomes the padded length, and the mask goes in as GroupQueryAttention's additive
``attention_bias``. Rotary positions then count from the first (padding) column for every row, a shift that rotary
embeddings cancel in every query-key product. The parity gate (export_with_parity) still decides, as for our other
exporters; the graph needs onnxruntime >= 1.23 where it is served (12-input GroupQueryAttention).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from kfp_llmops.errors import UserInputError

ATTENTION_OP = "GroupQueryAttention"
SEQLENS_K, ATTENTION_BIAS = 5, 10  # GroupQueryAttention's input slots


def run_builder(hf_dir: str | Path, out_dir: str | Path, *, name: str, cache_dir: str | Path,
                precision: str = "fp32") -> Path:
    """Runs the builder (``-e cpu``, offline) on a saved Hugging Face folder at ``precision`` (``fp32``, ``int4``...)
    into ``out_dir`` (its downloads cache: ``cache_dir``); returns ``out_dir/model.onnx``. A model it cannot build raises
    a UserInputError with its reason."""
    out_dir = Path(out_dir)
    done = subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-m", name, "-i", str(hf_dir),
                           "-o", str(out_dir), "-p", precision, "-e", "cpu", "-c", str(cache_dir)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not (out_dir / "model.onnx").exists():
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line or "not" in line), lines[-1] if lines else "")
        raise UserInputError(f"onnxruntime-genai's builder cannot build this {name!r} model: {reason.strip()[:300]} "
                             "(export it with exporter torchscript or torch.export)")
    return out_dir / "model.onnx"


def build(model, tokenizer, out_dir: str | Path, model_file: str, external_data: bool) -> Path:
    """Saves the (merged) model and its tokenizer as a Hugging Face folder, runs the builder on it (fp32, CPU) and
    writes the graph, rewritten for left-padded batches, as ``out_dir/model_file`` (weights in ``<file>.data``
    beside it when ``external_data``)."""
    from kfp_llmops.onnx_runtime import CacheLayout

    if tokenizer is None:
        raise UserInputError("the onnxruntime-genai exporter needs the tokenizer (its builder saves one with the graph)")
    with tempfile.TemporaryDirectory() as tmp:
        hf = Path(tmp) / "hf"
        model.save_pretrained(hf, safe_serialization=True)
        tokenizer.save_pretrained(hf)
        built = run_builder(hf, Path(tmp) / "built", name=getattr(model.config, "model_type", "?"),
                            cache_dir=Path(tmp) / "cache")
        return serve_left_padded(built, Path(out_dir) / model_file, CacheLayout.of(model.config), external_data)


def serve_left_padded(src: Path, dst: Path, layout, external_data: bool) -> Path:
    """The builder's graph, rewritten so that left-padded batches are exact (see the module docstring), with our
    input and output order and the cache's head and head-size axes fixed."""
    import onnx_ir as ir
    from onnx_ir import tape

    from kfp_llmops.onnx_runtime import SHARED_CACHE_KEY

    model = ir.load(str(src))
    graph = model.graph
    attention = [n for n in graph if n.op_type == ATTENTION_OP and n.domain == "com.microsoft"]
    if len(attention) != layout.layers:
        raise UserInputError(f"{src}: {len(attention)} {ATTENTION_OP} nodes for {layout.layers} layers: not a graph "
                             "this rewrite knows (onnxruntime-genai changed its builder?)")
    ins = {v.name: v for v in graph.inputs}
    query = attention[0].inputs[0]
    dtype = query.dtype if query is not None and query.dtype is not None else ir.DataType.FLOAT
    np_dtype = dtype.numpy()

    t = tape.Tape()

    def const(value, dt=np.int64):
        return t.op("Constant", [], attributes={"value": ir.tensor(np.asarray(value, dt))})

    mask = ins["attention_mask"]
    # each row's last real position: the last column in a left-padded batch, as if every row were as long as the
    # batch (attention is causal within it); the end of the row's tokens in a right-padded one, as the builder had it
    seqlens_k = t.op("Cast", [t.op("ArgMax", [mask], attributes={"axis": 1, "keepdims": 0, "select_last_index": 1})],
                     attributes={"to": ir.DataType.INT32})
    # (batch, 1, new, total): 0 where the mask is 1, the dtype's lowest finite value where it is 0 (finite: no NaN in
    # the rows of padding positions, which see only padding)
    keep = t.op("Cast", [t.op("Unsqueeze", [mask, const([1, 2])])], attributes={"to": ir.DataType.BOOL})
    bias = t.op("Where", [keep, const(0, np_dtype), const(np.finfo(np_dtype).min, np_dtype)])
    new = t.op("Shape", [ins["input_ids"]], attributes={"start": 1, "end": 2})
    bias = t.op("Expand", [bias, t.op("Concat", [const([1, 1]), new, const([1])], attributes={"axis": 0})])
    graph.extend(t.nodes)
    for node in attention:
        if len(node.inputs) > ATTENTION_BIAS and node.inputs[ATTENTION_BIAS] is not None:
            raise UserInputError(f"{src}: {node.name} already takes an attention_bias")
        node.resize_inputs(max(len(node.inputs), ATTENTION_BIAS + 1))
        node.replace_input_with(SEQLENS_K, seqlens_k)
        node.replace_input_with(ATTENTION_BIAS, bias)
    for v in graph.inputs:
        if v.name.startswith("past_key_values."):
            v.shape = ir.Shape(["batch", layout.kv_heads, "past_sequence", layout.head_dim])
    order_in = ["input_ids", "attention_mask", *layout.past_names]
    order_out = ["logits", *layout.present_names]
    outs = {v.name: v for v in graph.outputs}
    if set(ins) != set(order_in) or set(outs) != set(order_out):
        raise UserInputError(f"{src}: inputs {sorted(ins)} and outputs {sorted(outs)} are not a KV-cache decoder's")
    graph.inputs.clear()
    graph.inputs.extend(ins[n] for n in order_in)
    graph.outputs.clear()
    graph.outputs.extend(outs[n] for n in order_out)
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    model.metadata_props[SHARED_CACHE_KEY] = "1"  # onnx_greedy decodes into one cache buffer
    RemoveUnusedNodesPass()(model)  # the builder's sum(mask) - 1, no longer read
    graph.sort()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if external_data:
        ir.save(model, str(dst), external_data=dst.name + ".data", size_threshold_bytes=1024)
    else:  # the builder wrote its weights beside src: into the graph (a model under 2 GB)
        ir.save(ir.external_data.load_to_model(model), str(dst))
    return dst
