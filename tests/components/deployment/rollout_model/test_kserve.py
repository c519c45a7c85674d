"""The kserve target against a recording stand-in of the Kubernetes API (with a KServe controller's status updates)
and of Prometheus: the exact patches of a promotion and of a rollback. serving_format adapter: the InferenceService on
KServe's Hugging Face runtime with vLLM's LoRA arguments (the base by hub id at its commit, the adapter from
storageUri), a canary between adapter versions as two revisions, and the LLMInferenceService (llm-d) with
``spec.model.lora.adapters``; all validated against KServe's own CRDs."""

import json
from types import SimpleNamespace

import pytest
from faults import server_args
from recording_server import RecordingServer

from kfp_llmops.deployment import kserve
from kfp_llmops.components.deployment.rollout_model import core, targets
from kfp_llmops.deployment.metrics import Prometheus
from kfp_llmops.errors import ConfigError, UserInputError
from k8s_schema import crd_errors

PATH = "/apis/serving.kserve.io/v1beta1/namespaces/team-a/inferenceservices/reverser"
STORAGE = "gs://bucket/runs/7/export-onnx/onnx_model"


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class FakeCluster:
    """An InferenceService that KServe has rolled out as revision 1; a new storageUri creates the next revision,
    ready after ``ready_after`` reads (never, if None)."""

    def __init__(self, ready_after=1, exists=True):
        self.isvc = kserve.render_inference_service("reverser", "team-a", "gs://bucket/runs/6/export-onnx/onnx_model")
        self.isvc["status"] = self._status(1, 1)
        self.exists, self.ready_after, self.pending = exists, ready_after, None

    @staticmethod
    def _status(created, ready):
        return {"conditions": [{"type": "Ready", "status": "True"}],
                "components": {"predictor": {"latestCreatedRevision": f"reverser-predictor-0000{created}",
                                             "latestReadyRevision": f"reverser-predictor-0000{ready}",
                                             "latestRolledoutRevision": "reverser-predictor-00001"}}}

    def __call__(self, req):
        if req.path != PATH or not self.exists:
            return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
        if req.method == "PATCH":
            old_uri = self.isvc["spec"]["predictor"]["model"]["storageUri"]
            self.isvc = merge_patch(self.isvc, req.body)
            if self.isvc["spec"]["predictor"]["model"]["storageUri"] != old_uri:
                self.isvc["status"] = self._status(2, 1)
                self.pending = self.ready_after
            return 200, self.isvc
        if self.pending is not None:
            self.pending -= 1
            if self.pending <= 0:
                self.isvc["status"] = self._status(2, 2)
                self.pending = None
        return 200, self.isvc


class FakePrometheus:
    """Answers the Knative queries; the canary revision (00002) errors or slows down as asked."""

    def __init__(self, canary_error_rate=0.0, canary_p95_s=0.110):
        self.canary_error_rate, self.canary_p95_s = canary_error_rate, canary_p95_s

    def __call__(self, req):
        query = req.query["query"]
        canary = 'revision_name="reverser-predictor-00002"' in query
        assert 'namespace_name="team-a"' in query and "[60s]" in query
        if query.startswith("histogram_quantile"):
            value = (self.canary_p95_s if canary else 0.100) * 1000  # the histogram is in milliseconds
            value /= 1000
        elif 'response_code_class="5xx"' in query:
            value = 200 * self.canary_error_rate if canary else 0.0
        else:
            value = 200.0
        return 200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]}}


def rollout(cluster, prometheus, cfg=None):
    from kubernetes import client

    cfg = cfg or core.RolloutConfig(window_s=60)
    with RecordingServer(cluster) as api, RecordingServer(prometheus) as prom:
        conf = client.Configuration(host=api.url)
        custom = client.CustomObjectsApi(client.ApiClient(conf))
        target = kserve.KServeTarget(kserve.KServeSettings("reverser", "team-a", STORAGE, "ab" * 32, poll_s=0), cfg,
                                     api=custom, prometheus=Prometheus(prom.url), sleep=lambda s: None)
        try:
            result = core.run(target, cfg, log=lambda _: None)
        finally:
            patches = [(r.content_type, r.body) for r in api.calls("PATCH")]
    return result, patches, prom.requests


START = {"metadata": {"annotations": {"kfp-llmops/sha256": "ab" * 32}},
         "spec": {"predictor": {"canaryTrafficPercent": 5, "model": {"storageUri": STORAGE}}}}


def traffic(p):
    return {"spec": {"predictor": {"canaryTrafficPercent": p}}}


def test_promotion_patches_each_step_then_removes_the_field(kserve_crds):
    cluster = FakeCluster()
    result, patches, queries = rollout(cluster, FakePrometheus())
    assert result.decision == "promoted"
    assert patches == [("application/merge-patch+json", body) for body in
                       (START, traffic(10), traffic(25), traffic(50), traffic(100), traffic(None))]
    assert "canaryTrafficPercent" not in cluster.isvc["spec"]["predictor"]
    assert len(queries) == 5 * 2 * 3  # 5 steps x 2 revisions x (requests, errors, p95)
    final = {k: v for k, v in cluster.isvc.items() if k != "status"}
    assert crd_errors(final, kserve_crds) == []


def test_rollback_sets_zero_when_the_canary_errors(kserve_crds):
    cluster = FakeCluster()
    result, patches, _ = rollout(cluster, FakePrometheus(canary_error_rate=0.05))
    assert result.decision == "rolled_back"
    assert [b for _, b in patches] == [START, traffic(0)]
    assert cluster.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert crd_errors({k: v for k, v in cluster.isvc.items() if k != "status"}, kserve_crds) == []
    assert "error rate 0.0500 vs stable 0.0000 (limit 0.0000): FAIL" in result.reasons


def test_rollback_when_the_canary_is_slow():
    result, patches, _ = rollout(FakeCluster(), FakePrometheus(canary_p95_s=0.150))
    assert result.decision == "rolled_back" and [b for _, b in patches] == [START, traffic(0)]
    assert "p95 latency 150.00 ms vs stable 100.00 ms (limit 125.00 ms): FAIL" in result.reasons


def test_a_canary_never_ready_hits_the_progress_deadline_and_is_rolled_back():
    cfg = core.RolloutConfig(window_s=60, progress_deadline_s=0.2)
    with pytest.raises(UserInputError, match=r"not ready within the 0 s progress deadline \(latest created reverser-predictor-00002, ready reverser-predictor-00001\)"):
        rollout(FakeCluster(ready_after=None), FakePrometheus(), cfg)


def test_a_missing_inference_service_is_named():
    with pytest.raises(ConfigError, match="InferenceService team-a/reverser does not exist: apply manifests/inferenceservice.yaml"):
        rollout(FakeCluster(exists=False), FakePrometheus())


def test_exit_handler_restores_stable_only_when_a_canary_is_in_flight():
    from kubernetes import client

    cluster = FakeCluster()
    cluster.isvc["spec"]["predictor"]["canaryTrafficPercent"] = 25
    with RecordingServer(cluster) as api:
        custom = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=api.url)))
        first = kserve.restore_stable(custom, "reverser", "team-a")
        second = kserve.restore_stable(custom, "reverser", "team-a")
    assert [r.body for r in api.calls("PATCH")] == [traffic(0)]
    assert first == "InferenceService team-a/reverser: canary at 25 % rolled back to the stable revision"
    assert "no canary in flight" in second


class TaggedCluster(FakeCluster):
    """With tag routing on, KServe's status lists the revisions' tagged URLs: here two real local servers."""

    def __init__(self, prev_url, latest_url):
        super().__init__()
        self.urls = {"prev": prev_url, "latest": latest_url}

    def __call__(self, req):
        code, body = super().__call__(req)
        annotations = self.isvc.get("metadata", {}).get("annotations", {})
        if code == 200 and annotations.get(kserve.TAG_ROUTING_ANNOTATION) == "true":
            self.isvc["status"]["components"]["predictor"]["traffic"] = [
                {"tag": "prev", "url": f"http://{self.urls['prev']}", "percent": 100},
                {"tag": "latest", "url": f"http://{self.urls['latest']}", "latestRevision": True, "percent": 0}]
        return code, self.isvc


@pytest.mark.parametrize("faults, decision", [({}, "promoted"), ({"fail_every": 3}, "rolled_back")])
def test_shadow_stage_mirrors_to_the_tagged_revisions_before_any_traffic_moves(onnx_repository, demo_assets, base_model,
                                                                               kserve_crds, faults, decision, monkeypatch):
    from kubernetes import client

    from kfp_llmops.deployment.requests import replay_requests
    from kfp_llmops.serving.local import local_server

    cfg = core.RolloutConfig.from_dict({"window_s": 60, "schedule": [50, 100], "shadow": {"requests": 12, "latency_slack_ms": 200}})
    requests = replay_requests(str(demo_assets / "eval.jsonl"), base_model, limit=6)
    with local_server("reverser", onnx_repository) as stable, \
            local_server("reverser", onnx_repository, extra_args=server_args(monkeypatch, **faults) if faults else ()) as candidate:
        cluster = TaggedCluster(stable, candidate)
        with RecordingServer(cluster) as api, RecordingServer(FakePrometheus()) as prom:
            custom = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=api.url)))
            target = kserve.KServeTarget(kserve.KServeSettings("reverser", "team-a", STORAGE, "ab" * 32, poll_s=0), cfg,
                                         api=custom, prometheus=Prometheus(prom.url), sleep=lambda s: None,
                                         requests=requests)
            result = core.run(target, cfg, log=lambda _: None)
            patches = [r.body for r in api.calls("PATCH")]
    shadow = result.steps[0]
    assert shadow.stage == "shadow" and shadow.canary["requests"] == shadow.stable["requests"] == 12
    assert patches[0] == {"metadata": {"annotations": {"kfp-llmops/sha256": "ab" * 32, kserve.TAG_ROUTING_ANNOTATION: "true"}},
                          "spec": {"predictor": {"canaryTrafficPercent": 0, "model": {"storageUri": STORAGE}}}}
    assert result.decision == decision
    if decision == "promoted":
        assert shadow.agreement == 1.0 and patches[1:] == [traffic(50), traffic(100), traffic(None)]
    else:  # stopped in the shadow stage: traffic never moved off stable
        assert shadow.canary["errors"] == 4 and shadow.stable["errors"] == 0
        assert patches[1:] == [traffic(0)]
        assert "error rate 0.3333 vs stable 0.0000 (limit 0.0000): FAIL" in result.reasons
    assert crd_errors({k: v for k, v in cluster.isvc.items() if k != "status"}, kserve_crds) == []


def test_vertex_has_no_shadow_stage_and_says_why():
    from kfp_llmops.components.deployment.rollout_model import targets

    cfg = core.RolloutConfig.from_dict({"shadow": {"requests": 8}})
    with pytest.raises(ConfigError, match="rollout_config.shadow is not available on the vertex target"):
        with targets.build("vertex", cfg, onnx_model=None, eval_dataset=None, stable=None, model_name="m", version="2",
                           resource="projects/p/locations/l/models/m", namespace="", inference_service="",
                           storage_uri="", prometheus_url="", vertex_endpoint="projects/p/locations/l/endpoints/e",
                           work_dir="/tmp"):
            pass


# --- serving_format adapter ------------------------------------------------------------------------------------

BASE, COMMIT = "Qwen/Qwen2.5-0.5B-Instruct", "7ae557604adf67be50417f59c2c2f167def9a775"
ARGS = ["--model_name=reverser-base", f"--model_id={BASE}", f"--model_revision={COMMIT}", "--backend=vllm",
        "--enable-lora", "--max-lora-rank=16", "--max-loras=1", "--lora-modules",
        json.dumps({"base_model_name": BASE, "name": "reverser", "path": "/mnt/models"})]


def test_vllm_lora_arguments_name_the_pinned_base_and_serve_the_adapter_as_the_model():
    assert kserve.adapter_args("reverser", BASE, COMMIT, 16) == ARGS
    assert kserve.adapter_args("reverser", f"{BASE}@v1.0", COMMIT, 8)[2] == "--model_revision=v1.0"  # as pinned
    assert [kserve.max_lora_rank(r) for r in (1, 8, 9, 64, 65, 320)] == [8, 8, 16, 64, 128, 320]
    with pytest.raises(ConfigError, match="above vLLM's largest --max-lora-rank"):
        kserve.max_lora_rank(1024)
    with pytest.raises(ConfigError, match="loads by hub id .* '/models/base' is not one"):
        kserve.adapter_args("reverser", "/models/base", "sha256:" + "0" * 64, 16)


def test_the_adapter_inference_service_is_valid(kserve_crds):
    isvc = kserve.render_inference_service("reverser", "team-a", STORAGE, serving_format="adapter", args=ARGS)
    assert crd_errors(isvc, kserve_crds) == []
    model = isvc["spec"]["predictor"]["model"]
    assert (model["runtime"], model["args"], model["storageUri"]) == (kserve.HF_RUNTIME, ARGS, STORAGE)
    with pytest.raises(ConfigError, match="needs vLLM's LoRA arguments"):
        kserve.render_inference_service("reverser", "team-a", STORAGE, serving_format="adapter")


def test_a_canary_between_adapter_versions_is_two_revisions_of_one_service(kserve_crds):
    """v1's adapter is served; v2's revision starts beside it with its own storageUri and arguments, traffic moves
    by canaryTrafficPercent and the analysis is KServe's per revision, exactly as for a merged model."""
    from kubernetes import client

    cluster = FakeCluster()
    cluster.isvc = {**kserve.render_inference_service("reverser", "team-a", "s3://models/reverser/1",
                                                      serving_format="adapter", args=ARGS), "status": cluster.isvc["status"]}
    v2_args = kserve.adapter_args("reverser", BASE, COMMIT, 32)  # v2 was trained at a higher rank
    cfg = core.RolloutConfig(window_s=60, schedule=(25, 100), serving_format="adapter")
    with RecordingServer(cluster) as api, RecordingServer(FakePrometheus()) as prom:
        custom = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=api.url)))
        target = kserve.KServeTarget(kserve.KServeSettings("reverser", "team-a", STORAGE, "ab" * 32, poll_s=0,
                                                           args=tuple(v2_args)),
                                     cfg, api=custom, prometheus=Prometheus(prom.url), sleep=lambda s: None)
        result = core.run(target, cfg, log=lambda _: None)
        patches = [r.body for r in api.calls("PATCH")]
    assert result.decision == "promoted"
    assert patches[0]["spec"]["predictor"] == {"canaryTrafficPercent": 25, "model": {"storageUri": STORAGE, "args": v2_args}}
    assert patches[1:] == [traffic(100), traffic(None)]
    final = {k: v for k, v in cluster.isvc.items() if k != "status"}
    assert final["spec"]["predictor"]["model"]["args"] == v2_args and crd_errors(final, kserve_crds) == []


def test_the_kserve_target_renders_the_candidates_adapter_arguments(monkeypatch):
    monkeypatch.setattr(kserve, "kubernetes_api", lambda: None)  # nothing is called here: only what would be
    adapter = SimpleNamespace(uri="s3://models/reverser/2", path="/unused", metadata={
        "schema": "kfp_llmops.LoraAdapter", "format": "peft-lora-safetensors", "base_model": BASE,
        "base_model_revision": COMMIT, "rank": 16.0, "size_bytes": 1000.0, "prompt_format": "chat-template", "sha256": "cd" * 32})
    cfg = core.RolloutConfig(serving_format="adapter")
    stable = SimpleNamespace(version="1", tags={"base_model": BASE, "base_model_revision": COMMIT})
    with targets.build("kserve", cfg, onnx_model=adapter, eval_dataset=None, stable=stable, model_name="reverser",
                       version="2", resource="", namespace="team-a", inference_service="reverser",
                       storage_uri=adapter.uri, prometheus_url="http://prometheus:9090", vertex_endpoint="",
                       work_dir="/tmp/unused") as (target, rendered):
        assert target.s.args == tuple(ARGS)
    assert rendered["spec"]["predictor"]["model"] == {"storageUri": adapter.uri, "args": ARGS}
    with pytest.raises(ConfigError, match="a canary between adapters runs both on one base"):
        with targets.build("kserve", cfg, onnx_model=adapter, eval_dataset=None, model_name="reverser", version="2",
                           stable=SimpleNamespace(version="1", tags={"base_model": "org/other", "base_model_revision": COMMIT}),
                           resource="", namespace="team-a", inference_service="reverser", storage_uri=adapter.uri,
                           prometheus_url="", vertex_endpoint="", work_dir="/tmp/unused"):
            pass


def test_vertex_refuses_adapters_by_name_with_the_reason():
    cfg = core.RolloutConfig(serving_format="adapter")
    with pytest.raises(ConfigError, match="not serving_format 'adapter': a Vertex AI endpoint splits traffic between "
                                          "deployed models"):
        with targets.build("vertex", cfg, onnx_model=None, eval_dataset=None, stable=None, model_name="llm", version="2",
                           resource="", namespace="", inference_service="", storage_uri="", prometheus_url="",
                           vertex_endpoint="projects/p/locations/l/endpoints/1", work_dir="/tmp/unused"):
            pass


def test_the_llm_inference_service_serves_both_versions_on_one_base(kserve_crds):
    adapters = [("reverser-v1", "s3://models/reverser/1"), ("reverser-v2", "pvc://adapters/reverser/2")]
    llmisvc = kserve.render_llm_inference_service("reverser", "team-a", f"{BASE}@{COMMIT}", adapters, max_rank=16)
    assert crd_errors(llmisvc, kserve_crds) == []
    model = llmisvc["spec"]["model"]
    assert (model["uri"], model["name"]) == (f"hf://{BASE}", BASE)
    assert model["lora"] == {"adapters": [{"name": n, "uri": u} for n, u in adapters], "maxRank": 16, "maxAdapters": 2}
    typo = json.loads(json.dumps(llmisvc))
    typo["spec"]["model"]["lora"]["maxRanks"] = 16
    assert any("maxRanks" in e for e in crd_errors(typo, kserve_crds))  # strict: a misspelt field is an error
    with pytest.raises(ConfigError, match="'gs://b/a' is not one of the schemes KServe downloads adapters from"):
        kserve.render_llm_inference_service("reverser", "team-a", BASE, [("a", "gs://b/a")])
