"""Reading per-revision statistics: a Prometheus HTTP API client (``/api/v1/query``) for clusters and clouds, and a
``/metrics`` scraper for the local target. Both yield :class:`~.core.RevisionStats`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from kfp_llmops.deployment.config import CustomCheck
from kfp_llmops.deployment.stats import RevisionStats
from kfp_llmops.errors import UserInputError


@dataclass(frozen=True)
class Queries:
    """PromQL templates for one revision; placeholders ``{revision}``, ``{namespace}``, ``{window}``."""

    requests: str
    errors: str
    p95_seconds: str


# Knative's queue-proxy metrics, present for every KServe revision in Serverless mode.
_KN = 'namespace_name="{namespace}", revision_name="{revision}"'
KNATIVE_QUERIES = Queries(
    requests="sum(increase(revision_app_request_count{" + _KN + "}[{window}]))",
    errors="sum(increase(revision_app_request_count{" + _KN + ', response_code_class="5xx"}[{window}]))',
    p95_seconds="histogram_quantile(0.95, sum by (le) (rate(revision_app_request_latencies_bucket{" + _KN
    + "}[{window}]))) / 1000",
)

# Vertex AI's online prediction metrics through Cloud Monitoring's PromQL API (Managed Service for Prometheus).
_VX = 'monitored_resource="aiplatform.googleapis.com/Endpoint", endpoint_id="{namespace}", deployed_model_id="{revision}"'
VERTEX_QUERIES = Queries(
    requests="sum(increase(aiplatform_googleapis_com:prediction_online_response_count{" + _VX + "}[{window}]))",
    errors="sum(increase(aiplatform_googleapis_com:prediction_online_response_count{" + _VX
    + ', response_code!~"2.."}[{window}]))',
    p95_seconds="histogram_quantile(0.95, sum by (le) (rate(aiplatform_googleapis_com:prediction_online_prediction_latencies_bucket{"
    + _VX + "}[{window}]))) / 1000",
)


class Prometheus:
    """Instant queries against a Prometheus-compatible HTTP API. ``headers`` is called per request (for tokens)."""

    def __init__(self, url: str, *, headers: Callable[[], dict] | None = None, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.headers = headers or dict
        self.timeout_s = timeout_s

    def scalar(self, query: str) -> float | None:
        import requests

        try:
            resp = requests.get(f"{self.url}/api/v1/query", params={"query": query}, headers=self.headers(),
                                timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise UserInputError(f"Prometheus at {self.url} could not be reached: {exc}") from None
        if resp.status_code != 200:
            raise UserInputError(f"Prometheus at {self.url} answered {resp.status_code} to {query!r}: {resp.text[:300]}")
        result = resp.json()["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def revision_stats(self, queries: Queries, *, revision: str, namespace: str, window_s: float,
                       custom: tuple[CustomCheck, ...] = ()) -> RevisionStats:
        values = {"revision": revision, "namespace": namespace, "window": f"{int(window_s)}s"}
        p95 = self.scalar(fill(queries.p95_seconds, values))
        return RevisionStats(
            requests=self.scalar(fill(queries.requests, values)) or 0.0,
            errors=self.scalar(fill(queries.errors, values)) or 0.0,
            p95_ms=None if p95 is None else p95 * 1000,
            custom={c.name: self.scalar(fill(c.query, values)) for c in custom},
        )


def fill(template: str, values: dict[str, str]) -> str:
    """Replaces ``{revision}``, ``{namespace}`` and ``{window}`` only: PromQL's own braces stay as they are."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


@dataclass(frozen=True)
class Scrape:
    """The counters of one ``/metrics`` scrape of our model server, for one model."""

    success: float
    error: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)

    @classmethod
    def parse(cls, text: str, model_name: str) -> "Scrape":
        from prometheus_client.parser import text_string_to_metric_families

        success = error = 0.0
        buckets = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get("model_name") != model_name:
                    continue
                if s.name == "kfp_llmops_requests_total":
                    if s.labels.get("outcome") == "success":
                        success = s.value
                    elif s.labels.get("outcome") == "error":
                        error = s.value
                elif s.name == "kfp_llmops_request_seconds_bucket":
                    buckets.append((float(s.labels["le"]), s.value))
        return cls(success, error, tuple(sorted(buckets)))

    def since(self, before: "Scrape") -> RevisionStats:
        """What was served between two scrapes (PromQL ``increase``), with the p95 as ``histogram_quantile``."""
        old = dict(before.buckets)
        delta = [(le, count - old.get(le, 0.0)) for le, count in self.buckets]
        requests = (self.success - before.success) + (self.error - before.error)
        p95 = histogram_quantile(0.95, delta)
        return RevisionStats(requests=requests, errors=self.error - before.error, p95_ms=None if p95 is None else p95 * 1000)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative ``(le, count)`` buckets: linear within the bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_le, prev_count = le, count
    return buckets[-1][0]
