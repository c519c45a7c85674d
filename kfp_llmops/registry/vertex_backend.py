"""Vertex AI Model Registry backend: one Model per name, a version per registration (``parent_model``), aliases.

Concurrency: registration is create-then-dedupe (the lowest version with a digest wins, a later duplicate is deleted;
if two first registrations created two Models of one name, the older Model wins and the other is deleted and its
version registered again under the winner); alias moves hold :meth:`VertexRegistry.lock`, a label on the Model's
default version set by compare-and-set on its ``etag``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from kfp_llmops.errors import ConfigError
from kfp_llmops.registry.base import ModelVersion

DIGEST_LABEL = "kfp-llmops-sha256"  # label values hold at most 63 characters: the first 40 hex digits are kept
LOCK_LABEL = "kfp-llmops-lock"  # <owner>-<unix time>: who holds the alias lock, since when
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
        """The Model of that display name; if a race created several, the oldest (every process picks the same)."""
        models = list(self._client.list_models(request={"parent": self.parent, "filter": f'display_name="{name}"'}))
        return min(models, key=lambda m: (m.create_time.timestamp() if m.create_time else 0, m.name), default=None)

    @staticmethod
    def _digest_label(digest: str) -> str:
        return digest[:40]

    def _version(self, model, created: bool = False) -> ModelVersion:
        labels = dict(model.labels)
        return ModelVersion(model.display_name, model.version_id, model.artifact_uri,
                            labels.get(DIGEST_LABEL, ""), created, labels, f"{model.name}@{model.version_id}")

    def _with_digest(self, parent_name: str, digest: str) -> list:
        return sorted(self._client.list_model_versions(
            request={"name": parent_name, "filter": f'labels.{DIGEST_LABEL}="{self._digest_label(digest)}"'}),
            key=lambda m: int(m.version_id))

    def find(self, name: str, digest: str) -> ModelVersion | None:
        parent = self._model(name)
        found = self._with_digest(parent.name, digest) if parent is not None else []
        return self._version(found[0]) if found else None

    def register(self, name: str, source: str, digest: str, tags: dict[str, str], description: str = "") -> ModelVersion:
        parent = self._model(name)
        label = self._digest_label(digest)
        if parent is not None:
            found = self._with_digest(parent.name, digest)
            if found:
                return self._version(found[0])
        labels = _fit({**{_label(k): _label(v) for k, v in tags.items()}, DIGEST_LABEL: label}, keep={DIGEST_LABEL})
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
        if parent is None and self._model(name).name != response.model:  # another first registration won
            self._client.delete_model(request={"name": response.model}).result(timeout=600)
            return self.register(name, source, digest, tags, description)
        winner = self._with_digest(response.model, digest)[0]
        if winner.version_id != response.model_version_id:  # a concurrent registration of the same digest won
            self._client.delete_model_version(
                request={"name": f"{response.model}@{response.model_version_id}"}).result(timeout=600)
            return self._version(winner)
        return ModelVersion(name, response.model_version_id, source, label, True, labels,
                            f"{response.model}@{response.model_version_id}")

    def download(self, version: ModelVersion, dest: str | os.PathLike) -> Path:
        """The version's files (its ``artifactUri``) in ``dest``: through the Cloud Storage FUSE mount ``/gcs/`` that
        Vertex AI Pipelines gives every step when present, else with the Cloud Storage client."""
        dest = Path(dest)
        if not version.source.startswith("gs://"):
            raise ConfigError(f"{version.name} version {version.version}: artifact URI {version.source!r} is not gs://")
        bucket, _, prefix = version.source.removeprefix("gs://").partition("/")
        mounted = Path("/gcs") / bucket / prefix
        if mounted.is_dir():
            shutil.copytree(mounted, dest, dirs_exist_ok=True)
            return dest
        from google.cloud import storage

        client = storage.Client(project=self.project)
        prefix = prefix.rstrip("/") + "/"
        for blob in client.list_blobs(bucket, prefix=prefix):
            if blob.name.endswith("/"):
                continue
            target = dest / blob.name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
        return dest

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 300.0):
        """Serialises alias moves on ``name``: a label on the Model's default version, set only if the version's
        ``etag`` is still the one read (Vertex refuses a stale etag), removed on exit."""
        from google.api_core.exceptions import Conflict, FailedPrecondition  # ABORTED comes back as HTTP 409

        parent = self._model(name)
        if parent is None:
            raise ConfigError(f"no model {name!r} in the Vertex AI Model Registry of {self.parent}")
        owner = uuid.uuid4().hex[:16]
        deadline = time.monotonic() + timeout
        while True:
            model = self._client.get_model(request={"name": parent.name})
            held = dict(model.labels).get(LOCK_LABEL, "")
            if not held or time.time() - float(held.rpartition("-")[2] or 0) > timeout:
                labels = {**dict(model.labels), LOCK_LABEL: f"{owner}-{int(time.time())}"}
                try:
                    self._client.update_model(request={"model": {"name": parent.name, "labels": labels, "etag": model.etag},
                                                       "update_mask": {"paths": ["labels"]}})
                    break
                except (Conflict, FailedPrecondition):  # someone else changed it first: read again
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: another process has held the registry lock for over {timeout:.0f} s")
            time.sleep(0.5)
        try:
            yield
        finally:
            model = self._client.get_model(request={"name": parent.name})
            labels = {k: v for k, v in dict(model.labels).items() if k != LOCK_LABEL}
            self._client.update_model(request={"model": {"name": parent.name, "labels": labels},
                                               "update_mask": {"paths": ["labels"]}})

    def get_version(self, name: str, version: str) -> ModelVersion | None:
        return self.get_alias(name, str(version))  # a version id or an alias: both name a version after the '@'

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Tags are labels here: keys and values lowercased, other characters '-', at most 63 characters."""
        current = self.get_version(name, version)
        if current is None:
            raise ConfigError(f"no version {version} of {name!r} in the Vertex AI Model Registry of {self.parent}")
        new = {_label(k): _label(v) for k, v in tags.items()}
        labels = _fit({**current.tags, **new}, keep={DIGEST_LABEL, LOCK_LABEL, *new})
        self._client.update_model(request={"model": {"name": current.resource, "labels": labels},
                                           "update_mask": {"paths": ["labels"]}})

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


MAX_LABELS = 64  # Vertex AI takes at most 64 labels on a resource


def _fit(labels: dict[str, str], keep: set[str]) -> dict[str, str]:
    """At most ``MAX_LABELS``: evaluation figures (``eval-*``) go first, from the last, then other labels from the
    last, never those in ``keep`` (the digest, the lock, what is being set now). Everything stays in lineage.json."""
    out = dict(labels)
    for prefer_eval in (True, False):
        for key in reversed(list(out)):
            if len(out) <= MAX_LABELS:
                return out
            if key not in keep and (key.startswith("eval-") or not prefer_eval):
                del out[key]
    return out


def _label(text) -> str:
    """A Vertex AI label key or value: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", str(text).lower())[:63]
