"""KFP component: merge the adapter, export an ONNX decoder with KV cache that passed the parity gate, measure its
optimization variants, and lay out a Triton model repository with the promoted one."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def export_onnx(
    base_model: str,
    adapter: Input[Model],
    eval_dataset: Input[Dataset],
    onnx_model: Output[Model],
    optimized_model: Output[Model],
    int8_model: Output[Model],
    variants: Output[Metrics],
    model_name: str = "llm",
    exporter: str = "torchscript",
    opset: int = 0,
    parity_tolerance: float = 1e-3,
    max_perplexity_increase: float = 0.05,
    base: Input[Model] = None,
):
    """``onnx_model`` is a Triton model repository (``<model_name>/1/model.onnx`` + ``config.pbtxt``; tokenizer and
    ``export.json`` at its root) holding the fastest variant (fp32, ort-optimized, int8-dynamic) whose perplexity on
    the eval set rises by at most ``max_perplexity_increase``. ``exporter``: ``torchscript`` (opset 18, runs on any
    onnxruntime >= 1.16) or ``torch.export`` (opset 23: ONNX Attention and RotaryEmbedding ops, about half the nodes
    per decoding step; the server needs onnxruntime >= 1.23) or ``onnxruntime-genai`` (its model builder's fused
    graph made exact for left-padded batches, the fastest decoding step; Llama, Qwen2/3, Granite; onnxruntime >= 1.23);
    ``opset`` 0: the exporter's default. ``optimized_model`` and ``int8_model`` are the two
    variants on their own (``model.onnx`` + tokenizer); ``variants`` has each one's measured trade-offs. ``base``
    (fetch_base_model's output): the base model is loaded from the run's copy."""
    import time

    started = time.monotonic()
    from kfp_llmops.adapters import merged_model
    from kfp_llmops.components.compilation.export_onnx import core
    from kfp_llmops.components.compilation.export_onnx.variants import VariantConfig
    from kfp_llmops.datasets import read_jsonl, records
    from kfp_llmops.cost import usage
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage, sha256_path
    from kfp_llmops.modeling import load_tokenizer, use_base_model
    from kfp_llmops.prompts import PromptFormat

    with user_errors():
        use_base_model(base_model, base.path if base is not None else None)
        cfg = core.ExportConfig(exporter=exporter, opset=opset or None, parity_tolerance=parity_tolerance)
        pairs = records(read_jsonl(eval_dataset.path))
        model = merged_model(base_model, adapter.path)
        with atomic_dir(onnx_model.path) as tmp, atomic_dir(optimized_model.path) as opt, atomic_dir(int8_model.path) as q8:
            info = core.build_repository(model, load_tokenizer(base_model), pairs, tmp, model_name, cfg,
                                         VariantConfig(max_perplexity_increase=max_perplexity_increase),
                                         variant_dirs={"ort-optimized": opt, "int8-dynamic": q8},
                                         fmt=PromptFormat.load(adapter.path))
    flat = {k: v for k, v in info.items() if not isinstance(v, dict)}
    typed = core.variant_metadata(info, info["promoted_variant"], repository=True)
    onnx_model.metadata.update(
        lineage(path=onnx_model.path, parents={"adapter": adapter.uri}, base_model=base_model,
                adapter_sha256=adapter.metadata.get("sha256"), **{**flat, **typed.to_metadata()},
                # what is served, without export.json's measurements: the same weights give the same digest
                model_sha256=sha256_path(onnx_model.path, exclude=("export.json",)), **usage(started))
    )
    for name, measured in info["variants"].items():
        for key, value in measured.items():
            variants.log_metric(f"{name}.{key}", float(value))
    for artifact, name in ((optimized_model, "ort-optimized"), (int8_model, "int8-dynamic")):
        measured, typed = info["variants"][name], core.variant_metadata(info, name, repository=False)
        artifact.metadata.update(lineage(path=artifact.path, parents={"adapter": adapter.uri}, base_model=base_model,
                                         promoted=name == info["promoted_variant"], **{**measured, **typed.to_metadata()}))
    print({k: v for k, v in flat.items()})
