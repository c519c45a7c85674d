"""KFP component: the merged model folder for Hugging Face serving runtimes (``serving_format: hf``)."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def merge_adapter(base_model: str, adapter: Input[Model], hf_model: Output[Model], dtype: str = "bf16",
                  base: Input[Model] = None):
    """Folds the adapter into the base and writes safetensors in ``dtype`` (bf16, as vLLM serves it), the tokenizer
    with the training prompt format as its chat template, and a generation config that stops at its end of turn.
    ``base`` (fetch_base_model's output): the base model is loaded from the run's copy."""
    import time

    started = time.monotonic()
    from kfp_llmops.artifacts import HfModelMetadata
    from kfp_llmops.cost import usage
    from kfp_llmops.components.compilation.merge_adapter import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage
    from kfp_llmops.modeling import use_base_model

    with user_errors():
        use_base_model(base_model, base.path if base is not None else None)
        with atomic_dir(hf_model.path) as tmp:
            info = core.merge_to_folder(base_model, adapter.path, tmp, dtype)
    typed = HfModelMetadata(dtype=info["dtype"], parameters=info["parameters"], size_bytes=info["size_bytes"],
                            prompt_format=info["prompt_format"])
    hf_model.metadata.update(lineage(path=hf_model.path, parents={"adapter": adapter.uri}, base_model=base_model,
                                     adapter_sha256=adapter.metadata.get("sha256"),
                                     merged_weights_sha256=info["merged_weights_sha256"], **typed.to_metadata(),
                                     **usage(started)))
    print(info)
