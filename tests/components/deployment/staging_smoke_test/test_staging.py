"""The staging smoke test: golden prompts through the real clients on a local server, an InferenceService (a recording
stand-in of the Kubernetes API whose status points at a real server) and a Vertex AI staging endpoint (a stand-in of
its REST API whose rawPredict reaches a real server the way Vertex AI's Triton integration does)."""

import numpy as np
import pytest
from fake_vertex import PARENT, FakeVertex
from faults import server_args
from recording_server import RecordingServer

from kfp_llmops.components.deployment.staging_smoke_test import core
from kfp_llmops.components.deployment.staging_smoke_test.deploy import golden_prompts, staged
from kfp_llmops.errors import ConfigError
from k8s_schema import crd_errors
from kfp_llmops.serving.local import local_server

STORAGE = "gs://bucket/runs/8/export-onnx/onnx_model"


@pytest.fixture(scope="module")
def golden(demo_assets, base_model):  # tokenized by the served model's tokenizer (a bare repository here: the base's)
    return golden_prompts(str(demo_assets / "eval.jsonl"), base_model, "onnx", 6)


def run(cfg, golden, tokenizer, **kwargs):
    with staged(cfg, serving_format="onnx", model_name="reverser", storage_uri=STORAGE, log=lambda _: None,
                **kwargs) as (call, where):
        return core.smoke_test(call, golden, cfg, serving_format="onnx", vocab_size=len(tokenizer), target=cfg.target,
                               where=where, log=lambda _: None)


def test_local_staging_answers_every_golden_prompt(golden, onnx_repository, tokenizer):
    result = run(core.StagingConfig(target="local", prompts=6), golden, tokenizer, model_dir=str(onnx_repository))
    assert result.passed and (result.prompts, result.errors, result.malformed) == (6, 0, 0)
    assert result.reasons[:2] == ["answered 6 of 6 golden prompts: ok", "well-formed answers 6 of 6: ok"]
    text = core.report_markdown(result, model_name="reverser", version="3")
    assert text.startswith("# Staging smoke test of reverser version 3: passed") and "| 6 |" in text


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        out.pop(k, None) if v is None else out.__setitem__(k, merge_patch(out.get(k), v))
    return out


class StagingCluster:
    """The staging namespace's API: no InferenceService at first; one created or patched becomes ready at once,
    its status URL the given (real) server."""

    def __init__(self, url):
        self.url, self.isvc = url, None

    def __call__(self, req):
        path = "/apis/serving.kserve.io/v1beta1/namespaces/staging/inferenceservices"
        if req.method == "POST" and req.path == path:
            self.isvc = req.body
        elif req.path != f"{path}/reverser-staging" or self.isvc is None:
            return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
        elif req.method == "PATCH":
            self.isvc = merge_patch(self.isvc, req.body)
        self.isvc["status"] = {"url": "http://reverser-staging.staging.example.com", "address": {"url": f"http://{self.url}"},
                               "conditions": [{"type": "Ready", "status": "True"}],
                               "components": {"predictor": {"latestCreatedRevision": "r-2", "latestReadyRevision": "r-2"}}}
        return 200, self.isvc


@pytest.mark.parametrize("faults, passed", [({}, True), ({"fail_every": 3}, False)])
def test_kserve_staging_creates_then_updates_the_staging_service_and_calls_it(golden, onnx_repository, tokenizer,
                                                                             kserve_crds, faults, passed, monkeypatch):
    from kubernetes import client

    cfg = core.StagingConfig(target="kserve", namespace="staging", prompts=6)
    with local_server("reverser", onnx_repository, extra_args=server_args(monkeypatch, **faults) if faults else ()) as url:
        cluster = StagingCluster(url)
        with RecordingServer(cluster) as api:
            custom = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=api.url)))
            first = run(cfg, golden, tokenizer, model_dir=str(onnx_repository), api=custom, digest="ab" * 32)
            second = run(cfg, golden, tokenizer, model_dir=str(onnx_repository), api=custom, digest="ab" * 32)
        writes = [(r.method, r.body) for r in api.requests if r.method != "GET"]
    assert [m for m, _ in writes] == ["POST", "PATCH"]  # created once, then pointed at the next candidate
    assert writes[1][1]["spec"] == {"predictor": {"model": {"storageUri": STORAGE}}}
    assert crd_errors({k: v for k, v in cluster.isvc.items() if k != "status"}, kserve_crds) == []
    assert cluster.isvc["metadata"]["labels"]["kfp-llmops/stage"] == "staging"
    assert first.where == f"InferenceService staging/reverser-staging at http://{url}"  # the cluster-local address
    assert first.passed is passed and second.passed is passed
    if not passed:
        assert first.errors == 2 and "answered 4 of 6 golden prompts: FAIL" in first.reasons
        with pytest.raises(core.StagingFailed, match="failed its staging smoke test on kserve .*production traffic "
                                                     "was not moved: answered 4 of 6 golden prompts: FAIL"):
            core.raise_if_failed(first, "reverser", "3")


def test_vertex_staging_deploys_to_the_staging_endpoint_and_calls_raw_predict(golden, onnx_repository, tokenizer):
    fake = FakeVertex()
    endpoint = fake.add_endpoint("9", deployed={"5": f"{PARENT}/models/42@1"}, split={"5": 100})  # the last candidate
    cfg = core.StagingConfig(target="vertex", vertex_endpoint=endpoint, prompts=6)
    from google.cloud import aiplatform_v1

    from kfp_llmops.vertex_api import gapic_client

    with local_server("reverser", onnx_repository) as url, RecordingServer(fake) as api:
        fake.triton = url
        result = run(cfg, golden, tokenizer, model_dir=str(onnx_repository), resource=f"{PARENT}/models/42@2",
                     vertex_client=gapic_client(aiplatform_v1.EndpointServiceClient, "us-central1", api.url),
                     vertex_api_endpoint=api.url)
        predicts = [r for r in api.requests if r.path.endswith(":rawPredict")]
    assert result.passed, result.reasons
    assert [m["modelVersionId"] for m in fake.endpoints[endpoint]["deployedModels"]] == ["2"]  # the old one undeployed
    assert len(predicts) == 6 and {r.headers["x-vertex-ai-triton-redirect"] for r in predicts} == {"v2/models/reverser/infer"}
    assert predicts[0].body["inputs"][0]["name"] == "input_ids" and predicts[0].body["inputs"][0]["datatype"] == "INT64"


def test_answers_are_checked_not_only_received():
    cfg = core.StagingConfig(target="local", prompts=3, min_match=0.5, max_p95_ms=10_000)
    golden = [core.Golden([{"role": "user", "content": "q"}], ref) for ref in ("sun moon", "a b", "x")]
    replies = iter(["sun moon and more", "", "y"])
    result = core.smoke_test(lambda _: next(replies), golden, cfg, serving_format="hf", vocab_size=0, target="local",
                             where="here", log=lambda _: None)
    assert not result.passed and (result.errors, result.malformed, result.matched) == (0, 1, 1)
    assert "well-formed answers 2 of 3: FAIL" in result.reasons
    assert "replies starting with the reference 1 of 3 (0.33, min 0.50): FAIL" in result.reasons
    assert core.well_formed("onnx", np.full((1, 4, 8), np.nan), 8) == "logits that are not all finite (NaN or inf)"
    assert core.well_formed("onnx", np.zeros((1, 4, 6)), 8).startswith("logits of shape [1, 4, 6]")
    assert core.well_formed("onnx", np.zeros((1, 4, 16)), 8) is None  # a padded vocabulary is fine
    with pytest.raises(ConfigError, match="min_match needs serving_format hf"):
        core.smoke_test(lambda _: None, golden, cfg, serving_format="onnx", vocab_size=8, target="local", where="",
                        log=lambda _: None)


@pytest.mark.parametrize("values, match", [
    ({"target": "prod"}, r"StagingConfig.target must be '' \(no staging\) or one of"),
    ({"target": "vertex"}, "StagingConfig.vertex_endpoint must be projects/P/locations/L/endpoints/E"),
    ({"prompts": 0}, "StagingConfig.prompts must be >= 1"),
    ({"min_match": 2}, r"StagingConfig.min_match must be in \[0, 1\]"),
])
def test_bad_staging_config_is_named(values, match):
    with pytest.raises(ConfigError, match=match):
        core.StagingConfig.from_dict(values)


def test_no_target_is_a_skip_that_says_so():
    assert not core.StagingConfig().enabled
    assert "skipped" in core.report_markdown(None, model_name="m", version="1")
