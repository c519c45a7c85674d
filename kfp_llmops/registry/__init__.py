"""Model registries behind one small interface: MLflow (the embedded default, a local SQLite store) and Vertex AI.

``open_registry(uri)`` picks the backend from the URI:

- ``""``: MLflow on ``sqlite:///$KFP_LLMOPS_HOME/registry.db`` (``~/.kfp-llmops`` unless set); kfp.local runs use it.
- ``sqlite:///...``, ``http(s)://...`` (an MLflow tracking server; credentials from ``MLFLOW_TRACKING_USERNAME`` /
  ``MLFLOW_TRACKING_PASSWORD``, which the KFP pipeline fills from a Kubernetes Secret): MLflow Model Registry.
- ``vertex://projects/P/locations/L``: Vertex AI Model Registry (one Model, a version per registration).

Every backend is idempotent, also under concurrency (a version is found by its content digest before one is created,
and after creating, the lowest version with that digest wins and a duplicate is removed) and keeps the production
pointer as the alias ``production``; promotion and rollback move it under the backend's :meth:`Registry.lock`. ``canary`` marks a version while it rolls out;
``previous`` keeps the production version a promotion replaced, which :func:`promote` and :func:`rollback` maintain.
"""

from __future__ import annotations

import os
import contextlib
from pathlib import Path

from kfp_llmops.errors import ConfigError
from kfp_llmops.registry.base import CANARY, DIGEST_TAG, PREVIOUS, PRODUCTION, ModelVersion, Registry  # noqa: F401 (the API)


def default_uri() -> str:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KFP_LLMOPS_HOME"):
        raise ConfigError(
            "registry_uri is empty in a Kubernetes pod, where a local registry would vanish with the pod: set the "
            "pipeline parameter registry_uri to an MLflow tracking server (e.g. http://mlflow.mlflow:5000) or to "
            "vertex://projects/PROJECT/locations/LOCATION")
    home = Path(os.environ.get("KFP_LLMOPS_HOME", Path.home() / ".kfp-llmops"))
    return f"sqlite:///{(home / 'registry.db').resolve()}"


MLFLOW_SCHEMES = ("sqlite:///", "http://", "https://", "databricks")  # the URIs an MLflow store answers


def open_registry(uri: str = "") -> Registry:
    uri = uri or default_uri()
    if uri.startswith("vertex://"):
        from kfp_llmops.registry.vertex_backend import VertexRegistry

        return VertexRegistry.from_uri(uri)
    if uri.startswith(MLFLOW_SCHEMES):
        from kfp_llmops.registry.mlflow_backend import MlflowRegistry

        return MlflowRegistry(uri)
    raise ConfigError(
        f"registry_uri {uri!r} is not supported: use sqlite:///PATH or http(s)://HOST (MLflow), "
        "or vertex://projects/PROJECT/locations/LOCATION (Vertex AI Model Registry)"
    )


def locked(registry: Registry, name: str):
    """The registry's lock on ``name`` (read-modify-write alias moves), or none for a backend without one."""
    lock = getattr(registry, "lock", None)
    return lock(name) if lock is not None else contextlib.nullcontext()


def promote(registry: Registry, name: str, version: str) -> str | None:
    """Moves ``production`` to ``version``; the version it replaces becomes ``previous``. Returns that version.
    Read and moves happen under the registry's lock, so two promotions at once keep the history linear."""
    with locked(registry, name):
        current = registry.get_alias(name, PRODUCTION)
        if current is not None and current.version == str(version):
            return None
        if current is not None:
            registry.set_alias(name, PREVIOUS, current.version)
        registry.set_alias(name, PRODUCTION, str(version))
        return current.version if current else None


def rollback(registry: Registry, name: str) -> tuple[str, str]:
    """Moves ``production`` back to ``previous`` (and ``previous`` to what production was). Returns (from, to)."""
    with locked(registry, name):
        current, previous = registry.get_alias(name, PRODUCTION), registry.get_alias(name, PREVIOUS)
        if current is None or previous is None:
            raise ConfigError(f"{name}: nothing to roll back to (production: {current and current.version}, "
                              f"previous: {previous and previous.version})")
        registry.set_alias(name, PRODUCTION, previous.version)
        registry.set_alias(name, PREVIOUS, current.version)
        return current.version, previous.version
