"""Training observability: a training step's metrics in an MLflow tracking store while the step runs.

``open_tracker(uri, ...)`` gives a :class:`StepTracker` for an MLflow store (a tracking server ``http(s)://``,
``sqlite:///``, ``databricks``) and a :class:`NullTracker` for anything else (no URI, ``vertex://``), so the training
code calls the same methods either way. Metrics are buffered and sent with one ``log_batch`` call at most every
``flush_every_s`` seconds (and at the end), so a run's curves appear in the MLflow UI while it trains without a
request per step. A tracking store that fails mid-run is reported once and then left alone: observability never
fails a training run. Never imports kfp.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Callable

KIND_TAG = "kfp_llmops.kind"


def is_mlflow_uri(uri: str) -> bool:
    from kfp_llmops.registry import MLFLOW_SCHEMES

    return bool(uri) and uri.startswith(MLFLOW_SCHEMES)


def experiment_name(model_name: str) -> str:
    """The experiment the registry's MLflow backend logs a model's versions to: training runs go beside them."""
    return f"kfp-llmops/{model_name}"


def peak_memory_mb() -> float:
    """The peak memory of this process: the accelerator's allocator peak on a GPU, else the peak RSS."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
    except ImportError:  # pragma: no cover (torch is in every image that trains)
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class NullTracker:
    """Tracking off: every call does nothing."""

    run_id = ""
    uri = ""

    def log_step(self, step: int, **metrics: float) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


class StepTracker:
    """One MLflow run: parameters at the start, step metrics buffered and flushed at most every ``flush_every_s``."""

    def __init__(self, client, run_id: str, uri: str, *, flush_every_s: float = 5.0,
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.flush_every_s = flush_every_s
        self.log = log
        self.clock = clock
        self._pending: list = []
        self._last_flush = clock()
        self._broken = False

    def log_step(self, step: int, **metrics: float) -> None:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        self._pending += [Metric(key, float(value), now_ms, int(step)) for key, value in metrics.items() if value is not None]
        if self.clock() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = self.clock()
        if self._broken or not self._pending:
            self._pending.clear()
            return
        batch, self._pending = self._pending, []
        try:
            for start in range(0, len(batch), 1000):  # MLflow's limit per log_batch call
                self.client.log_batch(self.run_id, metrics=batch[start:start + 1000], synchronous=True)
        except Exception as exc:  # noqa: BLE001 (a tracking outage must not stop training)
            self._broken = True
            self.log(f"WARNING: MLflow tracking at {self.uri} failed ({type(exc).__name__}: {exc}); training goes on "
                     "without step metrics")

    def close(self, status: str = "FINISHED") -> None:
        self.flush()
        if not self._broken:
            try:
                self.client.set_terminated(self.run_id, status=status)
            except Exception as exc:  # noqa: BLE001
                self.log(f"WARNING: could not end MLflow run {self.run_id} at {self.uri}: {exc}")


def open_tracker(uri: str, *, model_name: str, run_name: str, params: dict | None = None, tags: dict | None = None,
                 flush_every_s: float = 5.0, log: Callable[[str], None] = print) -> StepTracker | NullTracker:
    """A tracker for ``uri`` (``NullTracker`` when it is not an MLflow store or cannot be reached, with a line saying
    so): an MLflow run named ``run_name`` with ``params`` and ``tags``, in the experiment where the registry keeps
    ``model_name``'s versions (``kfp-llmops/<model_name>``), so a version and the training behind it sit together."""
    if not is_mlflow_uri(uri):
        if uri:
            log(f"training metrics are tracked in MLflow only; {uri.split('://')[0]}:// is not an MLflow store")
        return NullTracker()
    try:
        from mlflow.entities import Param

        from kfp_llmops.registry.mlflow_backend import MlflowRegistry

        store = MlflowRegistry(uri)  # a new SQLite store gets its tables under the registry's file lock
        client = store._client
        experiment = store.experiment_id(model_name)
        run = client.create_run(experiment, run_name=run_name, tags={KIND_TAG: "training", **(tags or {})})
        items = [Param(k, str(v)[:6000]) for k, v in sorted((params or {}).items())]
        for start in range(0, len(items), 100):  # MLflow's limit of parameters per log_batch call
            client.log_batch(run.info.run_id, params=items[start:start + 100], synchronous=True)
    except Exception as exc:  # noqa: BLE001 (observability never fails a training run)
        log(f"WARNING: MLflow tracking at {uri} is not available ({type(exc).__name__}: {exc}); training goes on "
            "without step metrics")
        return NullTracker()
    log(f"tracking training metrics in MLflow run {run.info.run_id} (experiment {experiment_name(model_name)!r}) at {uri}")
    return StepTracker(client, run.info.run_id, uri, flush_every_s=flush_every_s, log=log)
