"""KFP component: the LoRA adapter packaged as the version to serve on a shared base (``serving_format: adapter``)."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def package_adapter(base_model: str, adapter: Input[Model], adapter_model: Output[Model]):
    """Copies the adapter's safetensors, its config (naming ``base_model`` and its pinned commit) and its prompt
    format into ``adapter_model``, typed ``kfp_llmops.LoraAdapter``: what is registered, uploaded and served for this
    version (megabytes), instead of a merged copy of the base (gigabytes)."""
    from kfp_llmops.artifacts import LoraAdapterMetadata
    from kfp_llmops.components.compilation.package_adapter import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage

    revision = str(adapter.metadata.get("base_model_revision") or "")
    with user_errors():
        with atomic_dir(adapter_model.path) as tmp:
            info = core.package(adapter.path, tmp, base_model=base_model, base_model_revision=revision)
        typed = LoraAdapterMetadata(base_model=base_model, base_model_revision=revision, rank=info["rank"],
                                    size_bytes=info["size_bytes"], prompt_format=info["prompt_format"])
    adapter_model.metadata.update(lineage(path=adapter_model.path, parents={"adapter": adapter.uri},
                                          adapter_sha256=adapter.metadata.get("sha256"),
                                          parameters=info["parameters"], target_modules=info["target_modules"],
                                          **typed.to_metadata()))
    print(info)
