"""KFP component: the run's one copy of the base model, at one pinned revision."""

from kfp import dsl
from kfp.dsl import Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def fetch_base_model(base_model: str, base: Output[Model], cache: bool = True):
    """Resolves ``base_model`` (hub id, ``id@revision`` or folder) once for the run: a hub id to its commit, its
    safetensors weights, configs and tokenizer downloaded into ``base`` (``cache`` false: only the commit is pinned
    and each step downloads that commit); a folder is pinned by its content digest and read in place. The steps
    given ``base`` load from it (``kfp_llmops.modeling.use_base_model``) and name ``base_model`` in their lineage."""
    from kfp_llmops.components.registry.fetch_base_model import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage

    with user_errors(), atomic_dir(base.path) as tmp:
        fetched = core.fetch(base_model, tmp, copy=cache)
    where = "copied into the run" if fetched.copied else f"read from {fetched.load_from}"
    print(f"base model {base_model}: {fetched.source} revision {fetched.revision}, {len(fetched.files)} files, "
          f"{fetched.size_bytes / 1e9:.2f} GB, {where}")
    base.metadata.update(lineage(path=base.path, base_model=base_model, source=fetched.source, revision=fetched.revision,
                                 copied=fetched.copied, size_bytes=fetched.size_bytes, files=len(fetched.files)))
