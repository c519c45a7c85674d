"""Merges a LoRA adapter into its base model and exports an ONNX decoder with a KV cache; never imports kfp.

The graph takes ``input_ids``, ``attention_mask`` (past and new positions) and ``past_key_values.{i}.{key,value}``
and returns ``logits`` and ``present.{i}.{key,value}``, with dynamic batch, sequence and past-sequence axes, so
generating each new token costs one step over one token. A first step passes empty (length 0) past tensors.
Parity gate: logits on unmasked positions within a tolerance of torch, and greedy generations token-identical.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfp_llmops.adapters import weights_sha256
from kfp_llmops.configs import EXPORTERS
from kfp_llmops.onnx_runtime import CacheLayout, copy_model, external_files, onnx_greedy, session
from kfp_llmops.errors import ConfigError, UserInputError

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_BYTES = 1_500_000_000  # above this many bytes of fp32 weights, they go to an external data file
# No list of architectures: any causal LM that traces with a flat KV cache is exported, and the parity gate (logits
# and greedy tokens against torch) decides. Measured on tiny random configs (tests/components/compilation/export_onnx/
# test_architectures.py): llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3_text, granite, olmo2, gpt_neox, phi,
# starcoder2 and gpt2 pass (max |diff| < 1e-6, also past a sliding window), with either exporter.





@dataclass(frozen=True)
class ExportConfig:
    # "torchscript": torch.onnx.export(dynamo=False), opset 18: plain ONNX ops that any onnxruntime >= 1.16 runs,
    # Triton 25.01's included; exports in about a second at demo size. "torch.export": torch.onnx.export(dynamo=True),
    # opset 23: attention becomes ONNX's own Attention op (grouped-query heads native) and rotary embeddings its
    # RotaryEmbedding, so a decoding step runs about a third of the nodes. Needs onnxruntime >= 1.23 where it is
    # served, and exports slower (~20x at toy size, 1.7x at 0.5B). "onnxruntime-genai": its model builder's fused
    # graph (GroupQueryAttention, SkipSimplifiedLayerNormalization), rewritten for left-padded batches
    # (genai_builder.py); the fastest decoding step (1.05x genai's own loop at demo size, 2x at 50M), for what its
    # builder builds and the gate passes: llama, qwen2, qwen3, granite (test_architectures.py); onnxruntime >= 1.23
    # where served. The parity gate is the same for all.
    exporter: str = "torchscript"
    opset: int | None = None  # None: the exporter's default (EXPORTERS)
    parity_tolerance: float = 1e-3
    parity_new_tokens: int = 16
    long_context_parity: bool = True  # sliding-window models: parity on a prompt longer than the window too
    # weights in <model>.onnx.data beside the graph: "auto" above EXTERNAL_DATA_BYTES of fp32 weights (protobuf cannot
    # hold 2 GB: a 0.5B model in fp32 is 2 GB), "always" or "never"
    external_data: str = "auto"

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ConfigError(f"ExportConfig.exporter must be one of {', '.join(EXPORTERS)}, got {self.exporter!r}")
        if self.exporter == "onnxruntime-genai" and self.opset is not None:
            raise ConfigError("ExportConfig.opset cannot be set with the onnxruntime-genai exporter (its builder picks it)")
        if self.opset is not None and self.opset < 14:
            raise ConfigError(f"ExportConfig.opset must be >= 14, got {self.opset}")
        if self.exporter == "torch.export" and self.target_opset < 18:
            raise ConfigError(f"ExportConfig.opset must be >= 18 with the torch.export exporter, got {self.opset} "
                              "(23 or more gives the Attention and RotaryEmbedding ops it is chosen for)")
        if self.parity_tolerance <= 0:
            raise ConfigError(f"ExportConfig.parity_tolerance must be > 0, got {self.parity_tolerance}")
        if self.external_data not in ("auto", "always", "never"):
            raise ConfigError(f"ExportConfig.external_data must be auto, always or never, got {self.external_data!r}")

    @property
    def target_opset(self) -> int | None:
        return self.opset if self.opset is not None else EXPORTERS[self.exporter]

    def wants_external_data(self, model) -> bool:
        if self.external_data != "auto":
            return self.external_data == "always"
        return sum(p.numel() for p in model.parameters()) * 4 > EXTERNAL_DATA_BYTES


def decoder_module(model):
    """Wraps a causal LM so that the traced graph takes and returns the KV cache as flat tensors."""
    import torch
    from transformers import DynamicCache

    model_type = getattr(model.config, "model_type", "?")
    if not (hasattr(model, "can_generate") and model.can_generate()):
        raise UserInputError(f"export_onnx exports causal language models; a {model_type!r} {type(model).__name__} "
                             "does not generate text")
    try:
        layout = CacheLayout.of(model.config)
    except (AttributeError, TypeError) as exc:
        raise UserInputError(f"export_onnx: a {model_type!r} model does not describe a decoder KV cache "
                             f"(layers, attention heads, hidden size): {exc}") from None

    model.eval()  # an export and its parity check are inference: no dropout (gpt2's configs have 0.1)

    class Decoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            # in eval mode like the model: TorchScript's exporter puts a module that was training back into training
            # mode after export, dropout and all (which made gpt2 "fail" the parity check); torch.export warns on one
            self.training = False

        def forward(self, input_ids, attention_mask, *past):
            cache = DynamicCache()
            for i in range(layout.layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                             past_key_values=cache, use_cache=True)
            present = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
            return (out.logits, *present)

    return Decoder(model), layout


@contextlib.contextmanager
def _sdpa_native_gqa():
    """transformers' sdpa attention repeats the K/V heads of a grouped-query model before calling
    ``scaled_dot_product_attention`` unless ``TRANSFORMERS_SDPA_FORCE_GQA=1`` makes it pass ``enable_gqa``, which
    torch.export's ONNX translation turns into the Attention op's own ``kv_num_heads`` (no repeat in the graph).
    Only while exporting: TorchScript's exporter cannot convert ``enable_gqa``."""
    before = os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA")
    os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TRANSFORMERS_SDPA_FORCE_GQA"]
        else:
            os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = before


def export(model, out_dir: str | Path, cfg: ExportConfig | None = None, tokenizer=None) -> Path:
    """``tokenizer``: needed by the onnxruntime-genai exporter only (its builder reads a complete model folder)."""
    import torch

    cfg = cfg or ExportConfig()
    wrapped, layout = decoder_module(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL_FILE
    if cfg.exporter == "onnxruntime-genai":
        from kfp_llmops.components.compilation.export_onnx import genai_builder

        return genai_builder.build(model, tokenizer, out, MODEL_FILE, cfg.wants_external_data(model))
    batch, new, past_len = 2, 4, 3
    ids = torch.randint(0, model.config.vocab_size, (batch, new))
    mask = torch.ones(batch, past_len + new, dtype=torch.long)
    mask[0, :2] = 0  # trace with left padding, so that no "no padding" shortcut is baked into the graph
    past = [torch.zeros(batch, layout.kv_heads, past_len, layout.head_dim) for _ in layout.past_names]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"},
            "logits": {0: "batch", 1: "sequence"}}
    axes.update({n: {0: "batch", 2: "past_sequence"} for n in layout.past_names})
    axes.update({n: {0: "batch", 2: "total_sequence"} for n in layout.present_names})
    names = ["input_ids", "attention_mask", *layout.past_names]
    with torch.no_grad():
        if cfg.exporter == "torch.export":
            dyn = torch.export.Dim.DYNAMIC  # torch.export finds the relations (total = past + new) itself
            shapes = ({0: dyn, 1: dyn}, {0: dyn, 1: dyn}, tuple({0: dyn, 2: dyn} for _ in layout.past_names))
            with _sdpa_native_gqa():
                torch.onnx.export(wrapped, (ids, mask, *past), str(path), input_names=names,
                                  output_names=["logits", *layout.present_names], dynamic_shapes=shapes,
                                  opset_version=cfg.target_opset, dynamo=True, verbose=False,
                                  external_data=cfg.wants_external_data(model))
        else:
            torch.onnx.export(wrapped, (ids, mask, *past), str(path), input_names=names,
                              output_names=["logits", *layout.present_names], dynamic_axes=axes,
                              opset_version=cfg.target_opset, dynamo=False)
    if cfg.wants_external_data(model):
        to_external_data(path)
    return path


def graph_opset(path: str | Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def to_external_data(path: str | Path) -> None:
    """Rewrites the model with every weight over 1 KB in one ``<name>.data`` file beside it (the exporter may have
    written one file per tensor for a model over 2 GB)."""
    import onnx

    path = Path(path)
    before = external_files(path)
    proto = onnx.load(str(path))  # with any external data, into memory
    for f in before:
        f.unlink()
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)


def torch_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    import torch

    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    out = []
    for row in seqs[:, enc["input_ids"].shape[1] :].tolist():
        out.append(row[: row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row)
    return out


def active_sliding_window(config) -> int | None:
    """The attention window of a model that uses sliding-window attention in some layer (Mistral, Gemma 2/3,
    Starcoder2, Phi-3...), else None (no window, or one the config turns off)."""
    window = getattr(config, "sliding_window", None)
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return None
    if getattr(config, "use_sliding_window", True) is False:  # Qwen2 sets a window but does not use it by default
        return None
    types = getattr(config, "layer_types", None)
    if types and "sliding_attention" not in types:
        return None
    limit = getattr(config, "max_position_embeddings", None)
    return window if not limit or window < limit else None


def long_prompt_ids(tokenizer, prompts: list[str], length: int) -> np.ndarray:
    """``length`` token ids made of the prompts' tokens, repeated: a real-text sequence longer than a window."""
    ids = [t for p in prompts for t in tokenizer(p, add_special_tokens=False)["input_ids"]]
    reps = -(-length // max(1, len(ids)))
    return np.asarray([(ids * reps)[:length]], dtype=np.int64)


def logits_parity(model, sess, tokenizer, prompts: list[str], extra_ids: list | None = None) -> float:
    """Largest absolute logit difference between torch and onnxruntime over unmasked positions: each prompt alone,
    all of them left-padded together, each of ``extra_ids`` (token id arrays, e.g. longer than a sliding window), and
    a decoding step on top of a cache for each."""
    import torch

    wrapped, layout = decoder_module(model)
    tokenizer.padding_side = "left"
    batches = [tokenizer([p], return_tensors="np", add_special_tokens=False) for p in prompts]
    batches.append(tokenizer(prompts, return_tensors="np", padding=True, add_special_tokens=False))
    batches += [{"input_ids": ids, "attention_mask": np.ones_like(ids)} for ids in extra_ids or []]
    worst = 0.0
    for enc in batches:
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        empty = layout.empty_past(ids.shape[0])
        with torch.no_grad():
            ref = wrapped(torch.as_tensor(ids), torch.as_tensor(mask), *[torch.as_tensor(empty[n]) for n in layout.past_names])
        got = sess.run(None, {"input_ids": ids, "attention_mask": mask, **empty})
        keep = mask.astype(bool)
        worst = max(worst, float(np.abs(ref[0].numpy() - got[0])[keep].max()))
        # one cached step on top of what this step produced, each on its own cache (a graph may lay its cache out
        # otherwise, e.g. onnxruntime-genai's counts rotary positions from the padding: only the logits must agree)
        step_ids = got[0][:, -1].argmax(-1)[:, None].astype(np.int64)
        step_mask = np.concatenate([mask, np.ones((ids.shape[0], 1), np.int64)], axis=1)
        with torch.no_grad():
            ref2 = wrapped(torch.as_tensor(step_ids), torch.as_tensor(step_mask), *ref[1:])
        got2 = sess.run(None, {"input_ids": step_ids, "attention_mask": step_mask, **dict(zip(layout.past_names, got[1:]))})
        worst = max(worst, float(np.abs(ref2[0].numpy() - got2[0]).max()))
    return worst


def parity_report(model, sess, tokenizer, prompts: list[str], cfg: ExportConfig) -> dict:
    window = active_sliding_window(model.config) if cfg.long_context_parity else None
    extra = [long_prompt_ids(tokenizer, prompts, window + 16)] if window else []
    diff = logits_parity(model, sess, tokenizer, prompts, extra)
    theirs = torch_greedy(model, tokenizer, prompts, cfg.parity_new_tokens)
    ours = onnx_greedy(sess, tokenizer, prompts, cfg.parity_new_tokens)
    return {"max_abs_logit_diff": diff, "greedy_identical": sum(a == b for a, b in zip(ours, theirs)), "greedy_prompts": len(prompts),
            "sliding_window": window or 0, "long_context_tokens": window + 16 if window else 0}


def build_repository(model, tokenizer, pairs, repo: str | Path, model_name: str, cfg: ExportConfig | None = None,
                     variant_cfg=None, variant_dirs: dict | None = None, fmt=None) -> dict:
    """Exports with the parity gate, measures the optimization variants, and lays out a Triton model repository
    holding the fastest variant within the accuracy budget. Returns the export, variants and promoted variant.
    ``pairs``: records (pairs or conversations) asked in the prompt format ``fmt`` (plain when not given), which
    goes with every output folder (``prompt_format.json`` and the saved tokenizer's chat template)."""
    import tempfile

    from kfp_llmops.components.compilation.export_onnx import variants
    from kfp_llmops.serving import triton_repository as repository
    from kfp_llmops.prompts import PromptFormat, split_reference

    cfg = cfg or ExportConfig()
    fmt = fmt or PromptFormat()
    with tempfile.TemporaryDirectory() as work:
        prompts = [fmt.prompt(tokenizer, split_reference(p)[0]) for p in pairs[:8]]
        info = export_with_parity(model, tokenizer, prompts, work, cfg, fmt)
        paths = variants.make_variants(Path(work) / MODEL_FILE, Path(work) / "variants",
                                       external=bool(external_files(Path(work) / MODEL_FILE)))
        measured = variants.measure(paths, tokenizer, pairs, variant_cfg or variants.VariantConfig(), fmt)
        chosen = variants.promote(measured)
        repo = Path(repo)
        repo.mkdir(parents=True, exist_ok=True)
        repository.write_repository(repo, model_name, paths[chosen], session(paths[chosen]))
        for f in Path(work).iterdir():
            if f.is_file() and f.suffix not in (".onnx", ".data"):
                (repo / f.name).write_bytes(f.read_bytes())  # tokenizer files and export.json
        for name, target in (variant_dirs or {}).items():  # each variant as an output of its own
            Path(target).mkdir(parents=True, exist_ok=True)
            copy_model(paths[name], Path(target) / MODEL_FILE)
            fmt.save_with(tokenizer, target)
    summary = {**info, "model_name": model_name, "promoted_variant": chosen, "variants": measured, "prompt_format": fmt.kind,
               "merged_weights_sha256": weights_sha256(model)}
    (repo / "export.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def export_with_parity(model, tokenizer, prompts: list[str], out_dir: str | Path, cfg: ExportConfig | None = None,
                       fmt=None) -> dict:
    """Exports, checks parity and saves the tokenizer (with the prompt format ``fmt`` as its chat template, when
    given) beside the graph; raises with the measured difference."""
    cfg = cfg or ExportConfig()
    path = export(model, out_dir, cfg, tokenizer)
    try:
        report = parity_report(model, session(path), tokenizer, prompts, cfg)
    except Exception as exc:  # onnxruntime's own error types (InvalidArgument, Fail...) for a graph that cannot run
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        message = str(exc).split("Status Message:")[-1].strip().splitlines()[0][:300]
        raise UserInputError(f"ONNX parity check failed for this {getattr(model.config, 'model_type', '?')!r} model: "
                             f"the {cfg.exporter} export does not run under onnxruntime ({message})") from None
    if report["max_abs_logit_diff"] > cfg.parity_tolerance or report["greedy_identical"] != report["greedy_prompts"]:
        window = report.get("sliding_window")
        raise UserInputError(
            f"ONNX parity check failed for this {getattr(model.config, 'model_type', '?')!r} model"
            + (f" (sliding-window attention, window {window}; checked up to {report['long_context_tokens']} tokens)" if window else "")
            + ": "
            f"max |logits torch - onnxruntime| = {report['max_abs_logit_diff']:.3g} "
            f"(tolerance {cfg.parity_tolerance:.3g}); greedy generations identical for "
            f"{report['greedy_identical']}/{report['greedy_prompts']} prompts"
        )
    if fmt is not None:
        fmt.save_with(tokenizer, out_dir)
    else:
        tokenizer.save_pretrained(out_dir)
    size = path.stat().st_size + sum(f.stat().st_size for f in external_files(path))
    info = {"opset": graph_opset(path), "exporter": cfg.exporter, "precision": "fp32", "kv_cache": True, "size_bytes": size,
            "external_data": bool(external_files(path)), **report}
    (Path(out_dir) / "export.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def variant_metadata(info: dict, name: str, *, repository: bool):
    """The typed metadata of variant ``name`` of :func:`build_repository`'s ``info``: the Triton repository
    (``repository``, holding the promoted variant) or one variant's own artifact."""
    from kfp_llmops.artifacts import OnnxModelMetadata

    measured = info["variants"][name]
    return OnnxModelMetadata(format="triton-onnx-repository" if repository else "onnx", opset=info["opset"],
                             precision="int8" if name.startswith("int8") else "fp32", size_bytes=measured["size_bytes"],
                             max_abs_logit_diff=info["max_abs_logit_diff"], greedy_identical=info["greedy_identical"],
                             greedy_prompts=info["greedy_prompts"], latency_ms=measured["latency_ms"], variant=name,
                             kv_cache=info["kv_cache"])
