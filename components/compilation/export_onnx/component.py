"""KFP component: merge the adapter and export an ONNX model that passed the parity check."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def export_onnx(
    base_model: str,
    adapter: Input[Model],
    eval_dataset: Input[Dataset],
    onnx_model: Output[Model],
    opset: int = 18,
    parity_tolerance: float = 1e-3,
    parity_prompts: int = 8,
):
    """Writes ``model.onnx`` (input_ids, attention_mask -> logits) with its tokenizer; fails if parity breaks."""
    from kfp_llmops.components.compilation.export_onnx import core
    from kfp_llmops.datasets import instruction_pairs, read_jsonl
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage
    from kfp_llmops.modeling import load_tokenizer
    from kfp_llmops.prompts import format_prompt

    with user_errors():
        cfg = core.ExportConfig(opset=opset, parity_tolerance=parity_tolerance)
        prompts = [format_prompt(i) for i, _ in instruction_pairs(read_jsonl(eval_dataset.path))[:parity_prompts]]
        model = core.merge_adapter(base_model, adapter.path)
        with atomic_dir(onnx_model.path) as tmp:
            info = core.export_with_parity(model, load_tokenizer(base_model), prompts, tmp, cfg)
    onnx_model.metadata.update(
        lineage(path=onnx_model.path, parents={"adapter": adapter.uri}, base_model=base_model, format="onnx",
                adapter_sha256=adapter.metadata.get("sha256"), **info)
    )
    print(info)
