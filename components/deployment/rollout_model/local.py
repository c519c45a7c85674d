"""The ``local`` rollout target: stable and candidate as two real KServe ModelServer processes on localhost.

Each step sends the scheduled fraction of a replayed request set to the candidate and the rest to stable, then reads
requests, errors and the latency histogram of each server from its Prometheus ``/metrics`` (as a cluster's Prometheus
would) for the shared analysis. Promotion and rollback move the traffic pointer; the servers stop when the target
closes, whatever happened.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from kfp_llmops.components.deployment.rollout_model import mirror
from kfp_llmops.components.deployment.rollout_model.core import RevisionStats, RolloutConfig, ShadowStats
from kfp_llmops.components.deployment.rollout_model.metrics import Scrape
from kfp_llmops.errors import UserInputError
from kfp_llmops.serving.local import is_ready, local_server

REVISIONS = ("stable", "candidate")
WARMUP_REQUESTS = 5


class LocalTarget(contextlib.AbstractContextManager):
    def __init__(self, model_name: str, candidate_repo: str | Path, stable_repo: str | Path | None,
                 requests: list[tuple], cfg: RolloutConfig, *, server_args: dict[str, list[str]] | None = None,
                 log_dir: str | Path | None = None, startup_timeout_s: float = 60.0, serving_format: str = "onnx"):
        """``requests``: ``(input_ids, attention_mask)`` per request for ``onnx`` (protocol v2); message lists for
        ``hf`` (OpenAI-compatible chat completions, formatted by the server with the model's chat template)."""
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
        for rev in REVISIONS:
            if self.repos[rev] is None:
                continue
            log = self.log_dir / f"{rev}-server.log" if self.log_dir else None
            self.urls[rev] = self._stack.enter_context(local_server(
                self.model_name, self.repos[rev], timeout_s=self.startup_timeout_s, log_path=log,
                extra_args=self.server_args.get(rev, ()), serving_format=self.serving_format))
        for rev in self.urls:  # a cold server's first answers are slow: warm both up outside any analysis window
            for i in range(WARMUP_REQUESTS):
                with contextlib.suppress(Exception):  # errors count only inside the windows
                    self._call(rev, self.requests[i % len(self.requests)])
        self.percent = percent

    def set_traffic(self, percent: int) -> None:
        self.percent = percent

    def start_shadow(self) -> None:
        """Both servers up; the candidate gets no traffic of its own (``percent`` 0), only copies."""
        self.start(0)

    def shadow(self, requests: int) -> ShadowStats:
        """Each request goes to stable (whose answer a user would get) and a copy to the candidate, as a mirroring
        proxy does; their answers are compared request by request."""
        before = {rev: self._scrape(rev) for rev in self.urls}
        scores = []
        for _ in range(requests):
            request = self.requests[self._next % len(self.requests)]
            self._next += 1
            answers = {rev: self._answer(rev, request) for rev in REVISIONS}
            if all(a is not None for a in answers.values()):
                scores.append(mirror.agreement(self.serving_format, answers["stable"], answers["candidate"]))
        stats = {rev: self._scrape(rev).since(before[rev]) for rev in self.urls}
        return ShadowStats(stats["candidate"], stats["stable"], len(scores), sum(scores) / len(scores) if scores else 0.0)

    def wait_ready(self, timeout_s: float) -> None:
        for rev, url in self.urls.items():
            if not is_ready(url, self.model_name):
                raise UserInputError(f"the {rev} server at {self.urls[rev]} is not ready")

    def observe(self, percent: int) -> tuple[RevisionStats, RevisionStats | None]:
        n = self._requests_for(percent)
        before = {rev: self._scrape(rev) for rev in self.urls}
        for i in range(n):
            to_canary = not self.has_stable() or math.floor((i + 1) * percent / 100) > math.floor(i * percent / 100)
            self._send("candidate" if to_canary else "stable")
        stats = {rev: self._scrape(rev).since(before[rev]) for rev in self.urls}
        return stats["candidate"], stats.get("stable")

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
        self.sent[rev] += 1
        try:
            return self._call(rev, request)
        except Exception:  # an HTTP 500 or a dropped connection
            self.failed[rev] += 1
            return None

    def _call(self, rev: str, request):
        return mirror.answer(self.serving_format, self.urls[rev], self.model_name, request)

    def _scrape(self, rev: str) -> Scrape:
        import requests

        text = requests.get(f"http://{self.urls[rev]}/metrics", timeout=10).text
        return Scrape.parse(text, self.model_name)

    def close(self) -> None:
        self._stack.close()

    def __exit__(self, *exc) -> None:
        self.close()
