"""Finds the registry's ``production`` version of a model and brings its LoRA adapter here, so that a candidate is
evaluated and gated against what it would replace. Never imports kfp."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from kfp_llmops.errors import UserInputError
from kfp_llmops.handoff import PRODUCTION_ADAPTER, write_production



@dataclass(frozen=True)
class Production:
    model_name: str
    version: str
    adapter_model: str
    adapter_version: str
    base_model: str
    adapter_sha256: str
    registry_uri: str

    def baseline(self, adapter_dir: str) -> dict:
        """How evaluate_model loads it: the production adapter on its base model."""
        return {"base_model": self.base_model, "adapter": adapter_dir}


def resolve(registry, model_name: str, dest: str | Path, *, default_base_model: str = "") -> Production | None:
    """The production version of ``model_name`` with its adapter downloaded into ``dest/adapter`` and checked against
    the registered digest; None when nothing is in production yet (a first rollout)."""
    from kfp_llmops.lineage import sha256_path
    from kfp_llmops.registry import PRODUCTION

    current = registry.get_alias(model_name, PRODUCTION)
    if current is None:
        return None
    digest = current.tags.get("adapter_sha256", "")
    if not digest:
        raise UserInputError(f"{model_name} version {current.version} is '{PRODUCTION}' in {registry.uri} but has no "
                             "adapter_sha256 tag: it was not registered by register_model, so its adapter cannot be found")
    adapter_model = f"{model_name}-adapter"
    adapter = registry.find(adapter_model, digest)
    if adapter is None:
        raise UserInputError(f"{model_name} version {current.version} is '{PRODUCTION}' and names adapter sha256 "
                             f"{digest[:12]}..., but {adapter_model} in {registry.uri} has no version with that digest")
    out = Path(dest) / PRODUCTION_ADAPTER
    registry.download(adapter, out)
    got = sha256_path(out)
    if not got.startswith(digest):  # Vertex labels keep a prefix of the digest
        raise UserInputError(f"the downloaded adapter of {model_name} version {current.version} ({adapter.source}) has "
                             f"sha256 {got[:12]}..., not the registered {digest[:12]}...: refusing to evaluate against it")
    # MLflow tags keep the base model as written; Vertex labels are lowercased and cut (org/name -> org-name), so
    # there the run's own base model stands in (a production adapter on another base fails the tokenizer check)
    base = "" if registry.uri.startswith("vertex://") else current.tags.get("base_model", "")
    return Production(model_name, current.version, adapter_model, adapter.version, base or default_base_model, got,
                      registry.uri)


def write_info(production: Production | None, dest: str | Path) -> dict:
    """``dest/production.json``: what was resolved (or ``found: false``); returns it."""
    return write_production({"found": False} if production is None else {"found": True, **asdict(production)}, dest)
