"""MLflow Model Registry backend (a local SQLite store by default, or a tracking server).

A version is self-contained, the way MLflow users expect: the files of a local source folder are logged to an MLflow
run (experiment ``kfp-llmops/<name>``, in the tracking server's artifact store) and the version is registered from
``runs:/<run_id>/<name>``, so anyone with access to the server can download it. A remote URI (``gs://``, ``s3://``,
``models:/``, ``runs:/``...) is registered as it is.

Concurrency: registration is create-then-dedupe (after creating, the lowest version with the same digest wins and a
later duplicate is deleted, with its run), which holds for a SQLite store and for a server alike; a new SQLite store
is created under a file lock (two processes creating its tables at once would collide); alias moves go through
:meth:`lock`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

from kfp_llmops.registry.base import DIGEST_TAG, ModelVersion

RUN_TAG = "kfp_llmops.run_for"  # on the MLflow run that holds a version's files
LOCK_SUFFIX = "-kfp-llmops-lock"  # a registered model whose version numbers serve as a ticket lock on a server


class MlflowRegistry:
    def __init__(self, uri: str):
        from mlflow import MlflowClient

        self.uri = uri
        self._sqlite = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if self._sqlite is None:
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            return
        self._sqlite.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock():  # MLflow creates a store's tables when it is first opened: two processes would collide
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            self._client.search_experiments(max_results=1)  # the tracking store
            self._client.search_registered_models(max_results=1)  # and the registry store, a second engine

    def _file_lock(self):
        from filelock import FileLock

        return FileLock(str(self._sqlite) + ".lock", timeout=120)

    # --- versions ---------------------------------------------------------------------------------------------

    def _version(self, mv, created: bool = False) -> ModelVersion:
        tags = dict(mv.tags or {})
        return ModelVersion(mv.name, str(mv.version), mv.source, tags.get(DIGEST_TAG, ""), created, tags)

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(name)
        except MlflowException:
            try:
                self._client.create_registered_model(name, tags={"managed-by": "kfp-llmops"})
            except MlflowException as exc:  # another process created it between our two calls
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                    raise

    def _with_digest(self, name: str, digest: str) -> list:
        return sorted(self._client.search_model_versions(f"name = '{name}' and tag.`{DIGEST_TAG}` = '{digest}'"),
                      key=lambda v: int(v.version))

    def find(self, name: str, digest: str) -> ModelVersion | None:
        """The lowest version of ``name`` registered with ``digest``, if any."""
        found = self._with_digest(name, digest)
        return self._version(found[0]) if found else None

    def register(self, name: str, source: str, digest: str, tags: dict[str, str], description: str = "") -> ModelVersion:
        self._ensure_model(name)
        existing = self.find(name, digest)
        if existing is not None:
            return existing
        tags = {**{k: str(v) for k, v in tags.items()}, DIGEST_TAG: digest}
        run_id, version_source = self._upload(name, source, digest)
        mv = self._client.create_model_version(name, source=version_source, run_id=run_id, tags=tags,
                                               description=description or None)
        # create-then-dedupe: concurrent registrations of one digest each create a version; the lowest one wins
        winner = self._with_digest(name, digest)[0]
        if str(winner.version) != str(mv.version):
            self._client.delete_model_version(name, str(mv.version))
            if run_id:
                self._client.delete_run(run_id)
            return self._version(winner)
        return self._version(mv, created=True)

    def _upload(self, name: str, source: str, digest: str) -> tuple[str | None, str]:
        """Logs a local folder or file to a new run; returns ``(run_id, runs:/ URI)``. Remote URIs stay as they are."""
        local = Path(source.removeprefix("file://"))
        if "://" in source and not source.startswith("file://") or not local.exists():
            return None, source
        run = self._client.create_run(self.experiment_id(name), run_name=f"{name}-{digest[:12]}",
                                      tags={RUN_TAG: name, DIGEST_TAG: digest, "source": str(local)})
        try:
            if local.is_dir():
                self._client.log_artifacts(run.info.run_id, str(local), artifact_path=name)
            else:
                self._client.log_artifact(run.info.run_id, str(local), artifact_path=name)
        except BaseException:
            self._client.set_terminated(run.info.run_id, status="FAILED")
            raise
        self._client.set_terminated(run.info.run_id)
        return run.info.run_id, f"runs:/{run.info.run_id}/{name}"

    def experiment_id(self, name: str) -> str:
        """The experiment ``kfp-llmops/<name>`` (created with the store's artifact location when missing): the
        version files' runs and the training runs of the model (:mod:`kfp_llmops.tracking`) go there."""
        from mlflow.exceptions import MlflowException

        exp_name = f"kfp-llmops/{name}"
        for _ in range(3):
            exp = self._client.get_experiment_by_name(exp_name)
            if exp is not None:
                return exp.experiment_id
            location = (self._sqlite.parent / "artifacts").resolve().as_uri() if self._sqlite else None
            try:
                return self._client.create_experiment(exp_name, artifact_location=location)
            except MlflowException:  # created by another process meanwhile: read it again
                time.sleep(0.2)
        raise RuntimeError(f"could not create or find the MLflow experiment {exp_name!r} in {self.uri}")

    def download(self, version: ModelVersion, dest: str | os.PathLike) -> Path:
        """The version's files directly in ``dest`` (created; it must not exist yet, or be empty)."""
        import shutil
        import tempfile

        import mlflow.artifacts

        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} is not empty")
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = version.source
        if "://" not in source and ":/" not in source:  # a version registered before versions were self-contained
            source = Path(source).resolve().as_uri()
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
            got = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=self.uri))
            if dest.exists():
                dest.rmdir()
            if got.is_dir():
                got.replace(dest)
            else:
                dest.mkdir()
                shutil.move(str(got), dest / got.name)
        return dest

    def attach(self, name: str, version: str, files: dict[str, str | os.PathLike]) -> None:
        """Logs ``{file name: path}`` (the model card, the lineage) to the run that holds the version's files, beside
        them, so that the MLflow UI shows them with the version."""
        import shutil
        import tempfile

        source = self._client.get_model_version(name, str(version)).source
        if not source.startswith("runs:/"):
            return
        run_id = source.removeprefix("runs:/").split("/", 1)[0]
        with tempfile.TemporaryDirectory() as tmp:
            for file_name, path in files.items():
                shutil.copyfile(path, Path(tmp) / file_name)
            self._client.log_artifacts(run_id, tmp)

    def get_version(self, name: str, version: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self._client.get_model_version(name, str(version)))
        except MlflowException:
            return None

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_model_version_tag(name, str(version), key, str(value))

    # --- aliases ----------------------------------------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self._client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        if self.get_alias(name, alias) is not None:
            try:
                self._client.delete_registered_model_alias(name, alias)
            except MlflowException:  # removed by another process meanwhile
                if self.get_alias(name, alias) is not None:
                    raise

    def aliases(self, name: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return {k: str(v) for k, v in self._client.get_registered_model(name).aliases.items()}
        except MlflowException:
            return {}

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 300.0):
        """Serialises read-modify-write alias moves on ``name`` across processes. SQLite: a file lock. A server
        (no compare-and-set in its API): a ticket lock on version numbers, which the server hands out atomically:
        each holder creates a version of ``<name>-kfp-llmops-lock`` and waits until no lower one is left."""
        if self._sqlite is not None:
            with self._file_lock():
                yield
            return
        lock_model = f"{name}{LOCK_SUFFIX}"
        self._ensure_model(lock_model)
        owner = uuid.uuid4().hex  # a server accepts a version only with a source inside a run: an empty run per ticket
        run = self._client.create_run(self.experiment_id(lock_model), run_name=f"lock-{owner[:8]}", tags={RUN_TAG: lock_model})
        mine = self._client.create_model_version(lock_model, source=f"runs:/{run.info.run_id}/ticket", run_id=run.info.run_id,
                                                 tags={"owner": owner, "since": str(time.time())})
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting = [v for v in self._client.search_model_versions(f"name = '{lock_model}'")
                           if int(v.version) < int(mine.version) and not _stale(v, timeout)]
                if not waiting:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: another process has held the registry lock for over {timeout:.0f} s")
                time.sleep(0.2)
            yield
        finally:
            self._client.delete_model_version(lock_model, str(mine.version))
            self._client.delete_run(run.info.run_id)


def _stale(version, timeout: float) -> bool:
    """A ticket older than the timeout belongs to a process that died holding it."""
    since = float((version.tags or {}).get("since", "0") or 0)
    return time.time() - since > timeout
