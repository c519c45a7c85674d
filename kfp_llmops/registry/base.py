"""What every registry backend shares: a registered version, the interface, the alias names and the digest tag."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ContextManager, Protocol

PRODUCTION = "production"
CANARY = "canary"
PREVIOUS = "previous"  # the production version before the last promotion: what a rollback returns to
DIGEST_TAG = "kfp_llmops.sha256"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version. ``created`` is False when registration found an existing version with the digest."""

    name: str
    version: str
    source: str
    digest: str
    created: bool = False
    tags: dict = field(default_factory=dict)
    resource: str = ""  # the backend's own name for the version (Vertex AI: projects/.../models/M@V)


class Registry(Protocol):
    uri: str

    def register(self, name: str, source: str, digest: str, tags: dict[str, str], description: str = "") -> ModelVersion: ...

    def find(self, name: str, digest: str) -> ModelVersion | None: ...

    def download(self, version: ModelVersion, dest: str | os.PathLike) -> Path: ...

    def lock(self, name: str) -> ContextManager[None]: ...

    def get_alias(self, name: str, alias: str) -> ModelVersion | None: ...

    def set_alias(self, name: str, alias: str, version: str) -> None: ...

    def delete_alias(self, name: str, alias: str) -> None: ...

    def aliases(self, name: str) -> dict[str, str]: ...

    def get_version(self, name: str, version: str) -> ModelVersion | None: ...

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None: ...
