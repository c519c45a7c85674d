"""The ``local`` rollout target: stable and candidate as two real KServe ModelServer processes on localhost, or (for
``serving_format: adapter``) one server holding the base once with stable and candidate as two adapters by name.

Each step sends the scheduled fraction of a replayed request set to the candidate and the rest to stable (by URL, or
by the adapter name in the request's ``model`` field: the router's weighted split), then reads requests, errors and
the latency histogram of each from the server's Prometheus ``/metrics`` (as a cluster's Prometheus would; series per
served name) for the shared analysis. Promotion and rollback move the traffic pointer; the servers stop when the target
closes, whatever happened.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from kfp_llmops.deployment import mirror
from kfp_llmops.deployment.config import RolloutConfig
from kfp_llmops.deployment.stats import RevisionStats, ShadowStats
from kfp_llmops.deployment.metrics import Scrape
from kfp_llmops.errors import UserInputError
from kfp_llmops.serving.local import is_ready, local_server

REVISIONS = ("stable", "candidate")
WARMUP_REQUESTS = 5


class LocalTarget(contextlib.AbstractContextManager):
    def __init__(self, model_name: str, candidate_repo: str | Path, stable_repo: str | Path | None,
                 requests: list[tuple], cfg: RolloutConfig, *, server_args: dict[str, list[str]] | None = None,
                 log_dir: str | Path | None = None, startup_timeout_s: float = 60.0, serving_format: str = "onnx",
                 base_model: str | None = None, names: dict[str, str] | None = None, engine: str = "transformers"):
        """``requests``: ``(input_ids, attention_mask)`` per request for ``onnx`` (protocol v2); message lists for
        ``hf`` and ``adapter`` (OpenAI-compatible chat completions, formatted by the server with the model's prompt
        format). ``adapter``: ``base_model`` (what the server loads once) and the served ``names`` of the stable and
        candidate adapters (the repos are adapter folders). ``engine`` (``hf``, ``adapter``): ``transformers`` (our
        server, whose ``/metrics`` has a series per served name) or ``vllm`` (real vLLM, whose request metrics name
        only the base: each window's requests, errors and latency are then measured here, per revision, as a
        gateway in front of it would)."""
        if not requests:
            raise UserInputError("the local rollout needs at least one request to replay")
        self.model_name = model_name
        self.repos = {"candidate": Path(candidate_repo), "stable": Path(stable_repo) if stable_repo else None}
        self.requests = requests
        self.cfg = cfg
        self.server_args = server_args or {}
        self.log_dir = Path(log_dir) if log_dir else None
        self.startup_timeout_s = startup_timeout_s
        self.serving_format = serving_format
        self.base_model = base_model
        if serving_format == "adapter" and not (base_model and names and names.get("candidate")):
            raise UserInputError("the local adapter rollout needs the base model and the adapters' served names")
        # the name each revision is called by: the model's own, or (adapter) its adapter's
        self.names = {rev: (names or {}).get(rev) or model_name for rev in REVISIONS}
        self.engine = engine
        self.records: list[tuple[str, float, bool]] = []  # (revision, ms, ok) of every counted request
        self.urls: dict[str, str] = {}
        self.percent = 0
        self.sent = {r: 0 for r in REVISIONS}
        self.failed = {r: 0 for r in REVISIONS}
        self._stack = contextlib.ExitStack()
        self._next = 0

    # --- Target -----------------------------------------------------------------------------------------------
    def has_stable(self) -> bool:
        return self.repos["stable"] is not None

    def start(self, percent: int) -> None:
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.serving_format == "adapter":
            self._start_shared_base()
        for rev in REVISIONS if self.serving_format != "adapter" else ():
            if self.repos[rev] is None:
                continue
            log = self.log_dir / f"{rev}-server.log" if self.log_dir else None
            self.urls[rev] = self._stack.enter_context(local_server(
                self.model_name, self.repos[rev], timeout_s=self.startup_timeout_s, log_path=log,
                extra_args=self.server_args.get(rev, ()), serving_format=self.serving_format, engine=self.engine))
        for rev in self.urls:  # a cold server's first answers are slow: warm both up outside any analysis window
            for i in range(WARMUP_REQUESTS):
                with contextlib.suppress(Exception):  # errors count only inside the windows
                    self._call(rev, self.requests[i % len(self.requests)])
        self.percent = percent

    def _start_shared_base(self) -> None:
        """One server: the base loaded once (served as ``<model>-base``), each revision's adapter under its name."""
        adapters = [arg for rev in REVISIONS if self.repos[rev] is not None
                    for arg in ("--adapter", self.names[rev], str(self.repos[rev]))]
        extra = [*adapters, *self.server_args.get("candidate", ())]  # the one server serves the candidate too
        log = self.log_dir / "adapter-server.log" if self.log_dir else None
        url = self._stack.enter_context(local_server(
            f"{self.model_name}-base", self.base_model, timeout_s=self.startup_timeout_s, log_path=log,
            extra_args=extra, serving_format="adapter", engine=self.engine))
        self.urls = {rev: url for rev in REVISIONS if self.repos[rev] is not None}

    def set_traffic(self, percent: int) -> None:
        self.percent = percent

    def start_shadow(self) -> None:
        """Both servers up; the candidate gets no traffic of its own (``percent`` 0), only copies."""
        self.start(0)

    def shadow(self, requests: int) -> ShadowStats:
        """Each request goes to stable (whose answer a user would get) and a copy to the candidate, as a mirroring
        proxy does; their answers are compared request by request."""
        before, mark = {rev: self._scrape(rev) for rev in self.urls}, len(self.records)
        scores = []
        for _ in range(requests):
            request = self.requests[self._next % len(self.requests)]
            self._next += 1
            answers = {rev: self._answer(rev, request) for rev in REVISIONS}
            if all(a is not None for a in answers.values()):
                scores.append(mirror.agreement(self.serving_format, answers["stable"], answers["candidate"]))
        stats = self._window(before, mark)
        return ShadowStats(stats["candidate"], stats["stable"], len(scores), sum(scores) / len(scores) if scores else 0.0)

    def wait_ready(self, timeout_s: float) -> None:
        for rev, url in self.urls.items():
            if not is_ready(url, self.names[rev]):
                raise UserInputError(f"the {rev} server at {self.urls[rev]} is not ready")

    def observe(self, percent: int) -> tuple[RevisionStats, RevisionStats | None]:
        n = self._requests_for(percent)
        before, mark = {rev: self._scrape(rev) for rev in self.urls}, len(self.records)
        for i in range(n):
            to_canary = not self.has_stable() or math.floor((i + 1) * percent / 100) > math.floor(i * percent / 100)
            self._send("candidate" if to_canary else "stable")
        stats = self._window(before, mark)
        return stats["candidate"], stats.get("stable")

    def _window(self, before: dict, mark: int) -> dict[str, RevisionStats]:
        """Each revision's requests, errors and p95 latency since ``before`` (its server's metrics) or, with a
        server whose metrics do not name the revision (vLLM), since record ``mark`` of what was measured here."""
        if self.engine == "transformers":
            return {rev: self._scrape(rev).since(before[rev]) for rev in self.urls}
        import numpy as np

        out = {}
        for rev in self.urls:
            times = [ms for r, ms, _ in self.records[mark:] if r == rev]
            errors = sum(1 for r, _, ok in self.records[mark:] if r == rev and not ok)
            out[rev] = RevisionStats(float(len(times)), float(errors), float(np.percentile(times, 95)) if times else None)
        return out

    def rollback(self) -> None:
        self.percent = 0

    def promote(self) -> None:
        self.percent = 100

    # --- helpers ----------------------------------------------------------------------------------------------
    def _requests_for(self, percent: int) -> int:
        """Enough requests that each revision with traffic gets ``min_requests`` in the window."""
        need = self.cfg.requests_per_step
        floor = self.cfg.analysis.min_requests
        if self.has_stable():
            need = max(need, math.ceil(floor * 100 / percent))
            if percent < 100:
                need = max(need, math.ceil(floor * 100 / (100 - percent)))
        return need

    def _send(self, rev: str) -> None:
        request = self.requests[self._next % len(self.requests)]
        self._next += 1
        self._answer(rev, request)

    def _answer(self, rev: str, request):
        """The revision's answer, or None when it failed (counted; the analysis decides)."""
        import time

        self.sent[rev] += 1
        start = time.perf_counter()
        try:
            answer = self._call(rev, request)
        except Exception:  # an HTTP 500 or a dropped connection
            self.failed[rev] += 1
            self.records.append((rev, (time.perf_counter() - start) * 1000, False))
            return None
        self.records.append((rev, (time.perf_counter() - start) * 1000, True))
        return answer

    def _call(self, rev: str, request):
        return mirror.answer(self.serving_format, self.urls[rev], self.names[rev], request)

    def _scrape(self, rev: str) -> Scrape | None:
        if self.engine != "transformers":
            return None
        import requests

        text = requests.get(f"http://{self.urls[rev]}/metrics", timeout=10).text
        return Scrape.parse(text, self.names[rev])

    def close(self) -> None:
        self._stack.close()

    def __exit__(self, *exc) -> None:
        self.close()
