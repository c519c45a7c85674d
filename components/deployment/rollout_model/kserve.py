"""The ``kserve`` rollout target: canary traffic on an existing InferenceService, analysis from Prometheus.

The InferenceService is created once from ``manifests/`` (GitOps); the rollout step only gets, watches and patches
it (its Role grants nothing else). A rollout patches the new ``storageUri`` together with the first
``canaryTrafficPercent``, which makes KServe start a new revision beside the one last rolled out; later steps patch
the percentage; rollback patches ``canaryTrafficPercent: 0``; promotion removes the field (JSON merge patch ``null``).
Revisions come from ``status.components.predictor`` and are analysed with Knative's queue-proxy metrics.

The shadow stage (``RolloutConfig.shadow``) starts the new revision at ``canaryTrafficPercent: 0`` with KServe's tag
routing on (``serving.kserve.io/enable-tag-routing``: Knative then gives the revisions ``prev-`` and ``latest-`` URLs in
``status.components.predictor.traffic``); the step sends each replayed request to stable's URL and a copy to the
candidate's and compares the answers. No user request reaches the candidate until the canary's first step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kfp_llmops.components.deployment.rollout_model.core import RevisionStats, RolloutConfig
from kfp_llmops.components.deployment.rollout_model.metrics import KNATIVE_QUERIES, Prometheus, Queries
from kfp_llmops.errors import ConfigError, UserInputError

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
DIGEST_ANNOTATION = "kfp-llmops/sha256"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"


@dataclass(frozen=True)
class KServeSettings:
    name: str
    namespace: str
    storage_uri: str
    digest: str = ""
    poll_s: float = 5.0


HF_RUNTIME = "kserve-huggingfaceserver"  # KServe's own ClusterServingRuntime (vLLM backend on a GPU)


def render_inference_service(name: str, namespace: str, storage_uri: str, *, runtime: str = "",
                             labels: dict | None = None, annotations: dict | None = None,
                             serving_format: str = "onnx") -> dict:
    """The InferenceService (serving.kserve.io/v1beta1): ``onnx`` serves a Triton model repository over protocol v2
    on our ServingRuntime; ``hf`` serves a merged Hugging Face folder on KServe's Hugging Face runtime (vLLM on one
    GPU; OpenAI-compatible ``/openai/v1/chat/completions``, formatted with the folder's chat template)."""
    if serving_format == "hf":
        model = {
            "modelFormat": {"name": "huggingface"},
            "runtime": runtime or HF_RUNTIME,
            "args": [f"--model_name={name}"],
            "storageUri": storage_uri,
            "resources": {"requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
                          "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}},
        }
    else:
        model = {
            "modelFormat": {"name": "onnx"},
            "protocolVersion": "v2",
            "runtime": runtime or "kfp-llmops-triton",
            "storageUri": storage_uri,
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        }
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kfp-llmops", **(labels or {})}},
        "spec": {"predictor": {"model": model}},
    }
    if annotations:
        manifest["metadata"]["annotations"] = dict(annotations)
    return manifest


def start_patch(storage_uri: str, percent: int, digest: str = "") -> dict:
    patch = {"spec": {"predictor": {"canaryTrafficPercent": percent, "model": {"storageUri": storage_uri}}}}
    if digest:
        patch["metadata"] = {"annotations": {DIGEST_ANNOTATION: digest}}
    return patch


def shadow_patch(storage_uri: str, digest: str = "") -> dict:
    """The new revision beside stable with no traffic of its own, reachable at its tagged URL."""
    patch = start_patch(storage_uri, 0, digest)
    patch.setdefault("metadata", {}).setdefault("annotations", {})[TAG_ROUTING_ANNOTATION] = "true"
    return patch


def tagged_urls(isvc: dict) -> dict[str, str]:
    """``{tag: url}`` of the predictor's traffic targets (``prev``: stable, ``latest``: the new revision)."""
    predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    return {t["tag"]: t["url"] for t in predictor.get("traffic") or [] if t.get("tag") and t.get("url")}


def traffic_patch(percent: int | None) -> dict:
    """``None`` removes the field: the latest revision takes all traffic (promotion)."""
    return {"spec": {"predictor": {"canaryTrafficPercent": percent}}}


def is_ready(isvc: dict) -> bool:
    status = isvc.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
    predictor = (status.get("components") or {}).get("predictor") or {}
    return (conditions.get("Ready") == "True"
            and predictor.get("latestReadyRevision") is not None
            and predictor.get("latestReadyRevision") == predictor.get("latestCreatedRevision"))


class KServeTarget:
    def __init__(self, settings: KServeSettings, cfg: RolloutConfig, *, api, prometheus: Prometheus,
                 queries: Queries = KNATIVE_QUERIES, sleep=time.sleep, clock=time.monotonic,
                 requests: list | None = None, model_name: str = ""):
        """``api``: a ``kubernetes.client.CustomObjectsApi``. ``requests``: what the shadow stage replays (in the
        format of ``cfg.serving_format``) to the served model ``model_name`` (default: the InferenceService's name)."""
        self.s, self.cfg, self.api, self.prom, self.queries = settings, cfg, api, prometheus, queries
        self.requests, self.model_name = requests or [], model_name or settings.name
        self.sleep, self.clock = sleep, clock
        self.stable_revision: str | None = None
        self.canary_revision: str | None = None

    def _get(self) -> dict:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, self.s.namespace, PLURAL, self.s.name)
        except ApiException as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"InferenceService {self.s.namespace}/{self.s.name} does not exist: apply manifests/inferenceservice.yaml "
                    "(GitOps) first; the rollout step may only get, watch and patch it") from None
            raise UserInputError(f"reading InferenceService {self.s.namespace}/{self.s.name} failed: {exc.status} {exc.reason}") from None

    def _patch(self, body: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.patch_namespaced_custom_object(GROUP, VERSION, self.s.namespace, PLURAL, self.s.name, body)
        except ApiException as exc:
            raise UserInputError(f"patching InferenceService {self.s.namespace}/{self.s.name} failed: {exc.status} {exc.reason}") from None

    def has_stable(self) -> bool:
        predictor = ((self._get().get("status") or {}).get("components") or {}).get("predictor") or {}
        self.stable_revision = predictor.get("latestRolledoutRevision") or predictor.get("latestReadyRevision")
        return self.stable_revision is not None

    def start(self, percent: int) -> None:
        self._patch(start_patch(self.s.storage_uri, percent, self.s.digest))

    def set_traffic(self, percent: int) -> None:
        self._patch(traffic_patch(percent))

    def start_shadow(self) -> None:
        if not self.requests:
            raise ConfigError("the kserve shadow stage needs requests to mirror (the evaluation prompts)")
        self._patch(shadow_patch(self.s.storage_uri, self.s.digest))

    def shadow(self, requests: int):
        from kfp_llmops.components.deployment.rollout_model.mirror import mirror

        deadline = self.clock() + self.cfg.progress_deadline_s
        while True:  # Knative publishes the tagged URLs once the new revision is routed
            urls = tagged_urls(self._get())
            if {"prev", "latest"} <= set(urls):
                break
            if self.clock() >= deadline:
                raise UserInputError(
                    f"InferenceService {self.s.namespace}/{self.s.name}: no prev/latest tagged URLs in "
                    f"status.components.predictor.traffic (found {sorted(urls) or 'none'}) within "
                    f"{self.cfg.progress_deadline_s:.0f} s; the shadow stage needs KServe's serverless mode with "
                    f"tag routing ({TAG_ROUTING_ANNOTATION}: 'true')")
            self.sleep(self.s.poll_s)
        return mirror(self.cfg.serving_format, {"stable": urls["prev"], "candidate": urls["latest"]}, self.model_name,
                      self.requests, requests)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = self.clock() + timeout_s
        while True:
            isvc = self._get()
            predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
            if is_ready(isvc) and predictor.get("latestReadyRevision") != self.stable_revision:
                self.canary_revision = predictor["latestReadyRevision"]
                return
            if self.clock() >= deadline:
                raise UserInputError(
                    f"InferenceService {self.s.namespace}/{self.s.name}: the canary revision was not ready within the "
                    f"{timeout_s:.0f} s progress deadline (latest created {predictor.get('latestCreatedRevision')}, "
                    f"ready {predictor.get('latestReadyRevision')})")
            self.sleep(self.s.poll_s)

    def observe(self, percent: int) -> tuple[RevisionStats, RevisionStats | None]:
        self.sleep(self.cfg.window_s)
        stats = [self.prom.revision_stats(self.queries, revision=rev, namespace=self.s.namespace,
                                          window_s=self.cfg.window_s, custom=self.cfg.analysis.custom)
                 for rev in (self.canary_revision, self.stable_revision)]
        return stats[0], stats[1]

    def rollback(self) -> None:
        self._patch(traffic_patch(0))

    def promote(self) -> None:
        self._patch(traffic_patch(None))


ROLLOUT_TOKEN_DIR = "/var/run/secrets/kfp-llmops/rollout"  # pipelines/platform.py mounts the token Secret here


def kubernetes_api(kubeconfig: str = ""):
    """CustomObjectsApi as the rollout ServiceAccount (its token Secret mounted at ``ROLLOUT_TOKEN_DIR``)."""
    from kfp_llmops.k8s import custom_objects

    return custom_objects(ROLLOUT_TOKEN_DIR, kubeconfig)


def restore_stable(api, name: str, namespace: str) -> str:
    """For the exit handler: if a canary is in flight (``canaryTrafficPercent`` set and not 0), send all traffic back
    to the stable revision. Returns what it did."""
    isvc = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    percent = isvc.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
    if percent is None or percent == 0:
        return f"InferenceService {namespace}/{name}: no canary in flight (canaryTrafficPercent {percent})"
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, traffic_patch(0))
    return f"InferenceService {namespace}/{name}: canary at {percent} % rolled back to the stable revision"
