"""KFP component: the registry's production version of a model, as the baseline a candidate must not regress on."""

from kfp import dsl
from kfp.dsl import Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def resolve_production(
    model_name: str,
    base_model: str,
    production: Output[Model],
    registry_uri: str = "",
):
    """Finds the ``production`` alias of ``model_name`` in the registry and downloads its LoRA adapter (checked against
    the registered sha256) into ``production``. With nothing in production yet (a first rollout), ``production``
    holds only ``production.json`` with ``found: false`` and the evaluation falls back to the base model."""
    from kfp_llmops.components.registry.resolve_production import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, sha256_path
    from kfp_llmops.registry import open_registry

    with user_errors(), atomic_dir(production.path) as tmp:
        registry = open_registry(registry_uri)
        found = core.resolve(registry, model_name, tmp, default_base_model=base_model)
        info = core.write_info(found, tmp)
    if found is None:
        print(f"{model_name}: nothing is in production in {registry.uri} yet; the candidate is gated against the base model")
    else:
        print(f"{model_name}: production is version {found.version} (adapter {found.adapter_model} version "
              f"{found.adapter_version}, base {found.base_model})")
    production.metadata.update({**info, "sha256": sha256_path(production.path), "parents": {"registry": registry.uri}})
