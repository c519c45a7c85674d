"""Vertex AI Model Registry backend: one Model per name, a version per registration (``parent_model``), aliases."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from kfp_llmops.errors import ConfigError
from kfp_llmops.registry import ModelVersion

DIGEST_LABEL = "kfp-llmops-sha256"  # label values hold at most 63 characters: the first 40 hex digits are kept
_URI = re.compile(r"^vertex://projects/([^/]+)/locations/([^/?]+)/?$")


class VertexRegistry:
    def __init__(self, project: str, location: str, *, api_endpoint: str | None = None, serving_image: str | None = None):
        from google.cloud import aiplatform_v1

        from kfp_llmops.images import TRITON_IMAGE
        from kfp_llmops.vertex_api import gapic_client

        self.project, self.location = project, location
        self.uri = f"vertex://projects/{project}/locations/{location}"
        self.parent = f"projects/{project}/locations/{location}"
        self.serving_image = serving_image or TRITON_IMAGE
        self._client = gapic_client(aiplatform_v1.ModelServiceClient, location, api_endpoint)

    @classmethod
    def from_uri(cls, uri: str) -> "VertexRegistry":
        base, _, query = uri.partition("?")
        match = _URI.match(base)
        if not match:
            raise ConfigError(f"registry_uri {uri!r}: expected vertex://projects/PROJECT/locations/LOCATION")
        endpoint = parse_qs(query).get("api_endpoint", [None])[0]
        return cls(match.group(1), match.group(2), api_endpoint=endpoint)

    def _model(self, name: str):
        return next(iter(self._client.list_models(request={"parent": self.parent, "filter": f'display_name="{name}"'})), None)

    @staticmethod
    def _digest_label(digest: str) -> str:
        return digest[:40]

    def _version(self, model, created: bool = False) -> ModelVersion:
        labels = dict(model.labels)
        return ModelVersion(model.display_name, model.version_id, model.artifact_uri,
                            labels.get(DIGEST_LABEL, ""), created, labels, f"{model.name}@{model.version_id}")

    def register(self, name: str, source: str, digest: str, tags: dict[str, str], description: str = "") -> ModelVersion:
        parent = self._model(name)
        label = self._digest_label(digest)
        if parent is not None:
            found = list(self._client.list_model_versions(
                request={"name": parent.name, "filter": f'labels.{DIGEST_LABEL}="{label}"'}))
            if found:
                return self._version(min(found, key=lambda m: int(m.version_id)))
        labels = {_label(k): _label(v) for k, v in tags.items()}
        labels[DIGEST_LABEL] = label
        request = {
            "parent": self.parent,
            "model": {
                "display_name": name,
                "artifact_uri": source,
                "version_description": description,
                "labels": labels,
                "container_spec": {"image_uri": self.serving_image,
                                   "args": ["tritonserver", "--model-repository=$(AIP_STORAGE_URI)"]},
            },
        }
        if parent is not None:
            request["parent_model"] = parent.name
        response = self._client.upload_model(request=request).result(timeout=1800)
        return ModelVersion(name, response.model_version_id, source, label, True, labels,
                            f"{response.model}@{response.model_version_id}")

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        from google.api_core.exceptions import NotFound

        parent = self._model(name)
        if parent is None:
            return None
        try:
            return self._version(self._client.get_model(request={"name": f"{parent.name}@{alias}"}))
        except NotFound:
            return None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        parent = self._model(name)
        if parent is None:
            raise ConfigError(f"no model {name!r} in the Vertex AI Model Registry of {self.parent}")
        current = self.get_alias(name, alias)
        if current is not None and current.version == str(version):
            return
        if current is not None:  # an alias names one version: take it off the old one first
            self._client.merge_version_aliases(request={"name": f"{parent.name}@{current.version}", "version_aliases": [f"-{alias}"]})
        self._client.merge_version_aliases(request={"name": f"{parent.name}@{version}", "version_aliases": [alias]})

    def delete_alias(self, name: str, alias: str) -> None:
        current = self.get_alias(name, alias)
        if current is not None:
            parent = self._model(name)
            self._client.merge_version_aliases(request={"name": f"{parent.name}@{current.version}", "version_aliases": [f"-{alias}"]})

    def aliases(self, name: str) -> dict[str, str]:
        parent = self._model(name)
        if parent is None:
            return {}
        out = {}
        for mv in self._client.list_model_versions(request={"name": parent.name}):
            for a in mv.version_aliases:
                if a != "default":
                    out[a] = mv.version_id
        return out


def _label(text) -> str:
    """A Vertex AI label key or value: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", str(text).lower())[:63]
