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

from kfp_llmops.deployment.config import RolloutConfig
from kfp_llmops.deployment.stats import RevisionStats
from kfp_llmops.deployment.metrics import KNATIVE_QUERIES, Prometheus, Queries
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
    args: tuple[str, ...] = ()  # the runtime's arguments for the new revision (an adapter's base and LoRA module)


HF_RUNTIME = "kserve-huggingfaceserver"  # KServe's own ClusterServingRuntime (vLLM backend on a GPU)
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM accepts for --max-lora-rank
ADAPTER_MOUNT = "/mnt/models"
HUB_SECRET = "huggingface-token"  # as the pipeline's hub_credentials (pipelines/platform.py), in the serving namespace  # where KServe's storage initializer puts storageUri's files
LLMISVC_VERSION, LLMISVC_PLURAL = "v1alpha2", "llminferenceservices"
LORA_URI_SCHEMES = ("hf://", "s3://", "pvc://")  # what the LLMInferenceService controller downloads adapters from


def is_hub_id(model: str) -> bool:
    """``org/name`` (optionally ``@revision``): a Hugging Face hub id, not a path or a URI."""
    import re

    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+(@[\w./-]+)?", model)) and not model.startswith((".", "/"))


def max_lora_rank(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds an adapter of ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ConfigError(f"a LoRA rank of {rank} is above vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]})")


def adapter_args(name: str, base_model: str, base_revision: str, rank: int) -> list[str]:
    """vLLM's LoRA arguments on KServe's Hugging Face runtime for ``serving_format: adapter``: the base loaded by hub
    id at its commit (served as ``<name>-base``), the adapter from ``/mnt/models`` (storageUri, downloaded by the
    storage initializer: megabytes) served as ``name``, the name clients already call."""
    import json

    base, _, pinned = base_model.partition("@")  # as written: a manifest names the hub id, never a run's local copy
    if not is_hub_id(base):
        raise ConfigError(f"the kserve target serves an adapter on a base it loads by hub id (--model_id); base_model "
                          f"{base_model!r} is not one. Use a hub id (a private hub or mirror through HF_ENDPOINT), or "
                          "serve the merged model (serving_format hf)")
    revision = pinned or (base_revision if base_revision and not base_revision.startswith("sha256:") else "")
    return [f"--model_name={name}-base", f"--model_id={base}", *([f"--model_revision={revision}"] if revision else []),
            "--backend=vllm", "--enable-lora", f"--max-lora-rank={max_lora_rank(rank)}", "--max-loras=1",
            "--lora-modules", json.dumps({"name": name, "path": ADAPTER_MOUNT, "base_model_name": base}, sort_keys=True)]


def render_llm_inference_service(name: str, namespace: str, base_model: str, adapters: list[tuple[str, str]], *,
                                  max_rank: int = 64, replicas: int = 1, labels: dict | None = None) -> dict:
    """An ``LLMInferenceService`` (serving.kserve.io/v1alpha2, llm-d): the base once, each ``(name, uri)`` adapter
    served by name (vLLM ``--enable-lora``, configured by KServe's controller), every replica holding all of them.
    Adapter URIs must be ``hf://``, ``s3://`` or ``pvc://`` (what the controller downloads)."""
    base = base_model.partition("@")[0]
    if not is_hub_id(base) and not base.startswith(LORA_URI_SCHEMES):
        raise ConfigError(f"LLMInferenceService: base_model {base_model!r} is neither a hub id nor an hf://, s3:// or "
                          "pvc:// URI")
    if not adapters:
        raise ConfigError("LLMInferenceService: give at least one adapter (name, uri)")
    for adapter_name, uri in adapters:
        if not uri.startswith(LORA_URI_SCHEMES):
            raise ConfigError(f"LLMInferenceService adapter {adapter_name!r}: {uri!r} is not one of the schemes KServe "
                              f"downloads adapters from {LORA_URI_SCHEMES} (gs:// and oci:// are not): copy the "
                              "registered adapter to S3-compatible storage or a PVC")
    uri = base if base.startswith(LORA_URI_SCHEMES) else f"hf://{base}"
    return {
        "apiVersion": f"{GROUP}/{LLMISVC_VERSION}",
        "kind": "LLMInferenceService",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kfp-llmops", **(labels or {})}},
        "spec": {
            "model": {"uri": uri, "name": base.split("://", 1)[-1],
                      "lora": {"adapters": [{"name": n, "uri": u} for n, u in adapters],
                               "maxRank": max_lora_rank(max_rank), "maxAdapters": len(adapters)}},
            "replicas": replicas,
            "router": {"scheduler": {}, "route": {}, "gateway": {}},
            "template": {"containers": [{"name": "main", "resources": {
                "requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
                "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}}}]},
        },
    }


def render_inference_service(name: str, namespace: str, storage_uri: str, *, runtime: str = "",
                             labels: dict | None = None, annotations: dict | None = None,
                             serving_format: str = "onnx", args: list[str] | None = None) -> dict:
    """The InferenceService (serving.kserve.io/v1beta1): ``onnx`` serves a Triton model repository over protocol v2
    on our ServingRuntime; ``hf`` serves a merged Hugging Face folder on KServe's Hugging Face runtime (vLLM on one
    GPU; OpenAI-compatible ``/openai/v1/chat/completions``, formatted with the folder's chat template); ``adapter``
    serves a LoRA adapter (``storageUri``) on its base on the same runtime, with ``args`` from :func:`adapter_args`."""
    if serving_format == "adapter" and not args:
        raise ConfigError("an adapter InferenceService needs vLLM's LoRA arguments (kserve.adapter_args)")
    if serving_format in ("hf", "adapter"):
        model = {
            "modelFormat": {"name": "huggingface"},
            "runtime": runtime or HF_RUNTIME,
            "args": list(args) if args else [f"--model_name={name}"],
            "storageUri": storage_uri,
            "resources": {"requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
                          "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}},
        }
        if serving_format == "adapter":  # the base comes from the hub: a gated or private one needs the token
            model["env"] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                "name": HUB_SECRET, "key": "token", "optional": True}}}]
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


def start_patch(storage_uri: str, percent: int, digest: str = "", args: list[str] | tuple[str, ...] = ()) -> dict:
    """The new revision at ``percent``: its ``storageUri`` (and, for an adapter, the runtime's ``args``, which a merge
    patch replaces whole), so KServe starts it beside the stable one."""
    patch = {"spec": {"predictor": {"canaryTrafficPercent": percent, "model": {"storageUri": storage_uri,
                                                                              **({"args": list(args)} if args else {})}}}}
    if digest:
        patch["metadata"] = {"annotations": {DIGEST_ANNOTATION: digest}}
    return patch


def shadow_patch(storage_uri: str, digest: str = "", args: list[str] | tuple[str, ...] = ()) -> dict:
    """The new revision beside stable with no traffic of its own, reachable at its tagged URL."""
    patch = start_patch(storage_uri, 0, digest, args)
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
        self._patch(start_patch(self.s.storage_uri, percent, self.s.digest, self.s.args))

    def set_traffic(self, percent: int) -> None:
        self._patch(traffic_patch(percent))

    def start_shadow(self) -> None:
        if not self.requests:
            raise ConfigError("the kserve shadow stage needs requests to mirror (the evaluation prompts)")
        self._patch(shadow_patch(self.s.storage_uri, self.s.digest, self.s.args))

    def shadow(self, requests: int):
        from kfp_llmops.deployment.mirror import mirror

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
