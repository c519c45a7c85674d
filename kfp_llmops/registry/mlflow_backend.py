"""MLflow Model Registry backend (a local SQLite store by default, or a tracking server)."""

from __future__ import annotations

from pathlib import Path

from kfp_llmops.registry import DIGEST_TAG, ModelVersion


class MlflowRegistry:
    def __init__(self, uri: str):
        from mlflow import MlflowClient

        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _version(self, mv, created: bool = False) -> ModelVersion:
        tags = dict(mv.tags or {})
        return ModelVersion(mv.name, str(mv.version), mv.source, tags.get(DIGEST_TAG, ""), created, tags)

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(name)
        except MlflowException:
            self._client.create_registered_model(name, tags={"managed-by": "kfp-llmops"})

    def register(self, name: str, source: str, digest: str, tags: dict[str, str], description: str = "") -> ModelVersion:
        self._ensure_model(name)
        found = self._client.search_model_versions(f"name = '{name}' and tag.`{DIGEST_TAG}` = '{digest}'")
        if found:
            return self._version(min(found, key=lambda v: int(v.version)))
        tags = {**{k: str(v) for k, v in tags.items()}, DIGEST_TAG: digest}
        mv = self._client.create_model_version(name, source=source, tags=tags, description=description or None)
        return self._version(mv, created=True)

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self._client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        if self.get_alias(name, alias) is not None:
            self._client.delete_registered_model_alias(name, alias)

    def aliases(self, name: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return {k: str(v) for k, v in self._client.get_registered_model(name).aliases.items()}
        except MlflowException:
            return {}
