"""When to start a run: ``kfp-llmops run --if-data-changed`` submits nothing when the production model was trained on
the very training data of this run (the same content sha256), so a cron job or a CI step on a data repository can run
it on every change and only train when the data did change. No kfp here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfp_llmops.errors import UserInputError
from kfp_llmops.registry import PRODUCTION

TAG = "train_data_sha256"  # written by register_model: the training file's sha256 as given to the run


@dataclass(frozen=True)
class DataCheck:
    changed: bool
    digest: str
    message: str


def train_data_digest(arguments: dict) -> str:
    """The run's training-data sha256: ``train_data_sha256`` when given, else that of the local ``train_data`` file
    or folder of shards (:func:`kfp_llmops.lineage.sha256_path`). A remote file (gs://, s3://, ...) is not downloaded
    to hash it: pass its digest as ``train_data_sha256``."""
    from kfp_llmops.lineage import sha256_path

    if arguments.get("train_data_sha256"):
        return str(arguments["train_data_sha256"])
    data = str(arguments.get("train_data") or "")
    if data and Path(data).exists():
        return sha256_path(data)
    raise UserInputError(f"--if-data-changed needs the training data's sha256: train_data {data!r} is not a file or "
                         "folder on this machine; pass --param train_data_sha256=<sha256 of its content> (e.g. from your data "
                         "repository's CI) or a local path")


def check_data_changed(registry, model_name: str, digest: str) -> DataCheck:
    """Compares ``digest`` with the ``train_data_sha256`` tag of ``model_name``'s production version."""
    production = registry.get_alias(model_name, PRODUCTION)
    if production is None:
        return DataCheck(True, digest, f"{model_name} has no production version in {registry.uri}: a first run")
    trained_on = (production.tags or {}).get(TAG, "")
    if not trained_on:
        return DataCheck(True, digest, f"{model_name} version {production.version} (production) records no {TAG}: "
                                       "registered before data digests were kept; running")
    if trained_on == digest or (len(trained_on) >= 40 and digest.startswith(trained_on)):  # Vertex labels: 63 chars
        return DataCheck(False, digest, f"training data unchanged (sha256 {digest[:12]}...): {model_name} version "
                                        f"{production.version} in production was trained on it; nothing submitted")
    return DataCheck(True, digest, f"training data changed: sha256 {digest[:12]}... vs {trained_on[:12]}... of "
                                   f"{model_name} version {production.version} in production")
