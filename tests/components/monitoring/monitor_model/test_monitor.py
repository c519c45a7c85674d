"""Production monitoring on recorded traffic: traffic like the training data is healthy; traffic that drifts, refuses,
fails or slows down is a breach, and the breach rolls production back or starts a retraining run (recording stand-ins
of the Kubernetes and Kubeflow Pipelines APIs). The local servers' payload logs are what monitoring reads."""

import json

import pytest
from html_check import check_html
from payload_logs import drifting, like_training, record
from fake_kfp import kfp_api
from recording_server import RecordingServer

from kfp_llmops.components.monitoring.monitor_model import actions, core
from kfp_llmops.components.monitoring.monitor_model.service import monitor_once
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.registry import PREVIOUS, PRODUCTION, open_registry


@pytest.fixture(scope="module")
def reference(demo_assets):
    return core.reference_pairs(str(demo_assets / "train.jsonl"))


def production_registry(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for digest in "ab":
        registry.register("llm", f"gs://bucket/served/{digest}", digest * 64, {})
    registry.set_alias("llm", PREVIOUS, "1")
    registry.set_alias("llm", PRODUCTION, "2")
    return registry


def test_traffic_like_the_training_data_is_healthy(reference, tmp_path):
    log = record(tmp_path / "payloads.jsonl", like_training(reference))
    result = core.monitor(core.read_payload_log(log), reference, core.MonitorConfig(slo_p95_ms=200))
    assert result.conclusive and not result.breached, [c.line() for c in result.checks]
    assert result.requests == 150 and result.drift["input.prompt.words"] < 0.1
    assert [c.name for c in result.checks] == ["input drift (max PSI)", "output drift (PSI of reply length)",
                                               "refusal rate increase", "error rate", "p95 latency ms"]
    assert result.checks[-1].value == pytest.approx(20.0, abs=0.01)  # from the events' times
    page = core.report_html(result, model_name="llm", version="2", actions=[])
    check_html(page, plots=1)
    assert "all checks ok" in page


def test_traffic_is_reported_per_slice_the_requests_carry(reference, tmp_path):
    """The evaluation's slice fields, on served traffic: German requests go unanswered, English ones are fine."""
    traffic = [(p, None if k % 3 == 0 else r, {"language": "de" if k % 3 == 0 else "en"})
               for k, (p, r) in enumerate(like_training(reference, 90))]
    log = record(tmp_path / "payloads.jsonl", traffic)
    result = core.monitor(core.read_payload_log(log), reference, core.MonitorConfig.from_dict({"slices": ["language", "tier"]}))
    de, en = result.slices["language"]["de"], result.slices["language"]["en"]
    assert (de["requests"], de["errors"], de["error_rate"], de["reply_words_mean"]) == (30, 30, 1.0, None)
    assert (en["requests"], en["errors"], en["latency_p95_ms"]) == (60, 0, pytest.approx(20.0, abs=0.01))
    assert "tier" not in result.slices  # no request carries it
    page = core.report_html(result, model_name="llm", version="2", actions=[])
    check_html(page, plots=1)
    assert "<h2>Slices</h2><h3>language</h3>" in page and "<td>de</td><td>30</td><td>30</td><td>1.0000</td>" in page
    assert json.loads(json.dumps(result.to_dict()))["slices"]["language"]["en"]["requests"] == 60


def test_drifting_refusing_traffic_is_a_breach_and_rolls_production_back(demo_assets, tmp_path):
    registry = production_registry(tmp_path)
    log = record(tmp_path / "payloads.jsonl", drifting())
    lines = []
    result, version, done = monitor_once(str(log), str(demo_assets / "train.jsonl"),
                                         monitor_config={"on_breach": ["rollback"]}, retrain_config={},
                                         model_name="llm", registry_uri=registry.uri, log=lines.append)
    assert result.breached and version == "2"
    breached = {c.name for c in result.checks if c.breached}
    assert {"input drift (max PSI)", "output drift (PSI of reply length)", "refusal rate increase"} <= breached
    assert "error rate" not in breached
    assert done == ["registry: llm production 2 -> 1 (the local target has no running server to move)"]
    assert registry.aliases("llm") == {PRODUCTION: "1", PREVIOUS: "2"}
    assert lines[0].startswith("llm version 2: BREACH: input drift (max PSI) ")


def test_unanswered_requests_and_slow_answers_break_the_slos(reference, tmp_path):
    traffic = [(p, None if i % 10 == 0 else r) for i, (p, r) in enumerate(like_training(reference))]
    log = record(tmp_path / "payloads.jsonl", traffic, latency_ms=900)
    result = core.monitor(core.read_payload_log(log), reference, core.MonitorConfig(slo_p95_ms=500))
    failed = {c.name: c for c in result.checks if c.breached}
    assert set(failed) == {"error rate", "p95 latency ms"}
    assert failed["error rate"].value == pytest.approx(0.1) and failed["error rate"].note == "payload log"


def test_too_little_traffic_decides_nothing(reference, tmp_path):
    log = record(tmp_path / "payloads.jsonl", drifting(10))
    result = core.monitor(core.read_payload_log(log), reference, core.MonitorConfig())
    assert not result.conclusive and not result.breached and result.summary() == "inconclusive: 10 logged requests"


def test_a_log_that_is_not_cloudevents_is_named(tmp_path):
    bad = tmp_path / "payloads.jsonl"
    bad.write_text('{"hello": 1}\n')
    with pytest.raises(UserInputError, match=r"payloads.jsonl:1: not a CloudEvent in JSON"):
        core.read_payload_log(bad)
    with pytest.raises(UserInputError, match="no payload log"):
        core.read_payload_log(tmp_path / "missing")


def test_the_local_servers_write_the_log_monitoring_reads(base_model, onnx_repository, demo_assets, tmp_path):
    from kfp_llmops.deployment.requests import replay_requests
    from kfp_llmops.serving.local import chat_completion, infer_logits, local_server

    hf_log, onnx_log = tmp_path / "hf.jsonl", tmp_path / "onnx.jsonl"
    with local_server("llm", base_model, serving_format="hf", extra_args=["--payload-log", str(hf_log)]) as url:
        for word in ("sun", "moon"):
            chat_completion(url, "llm", [{"role": "user", "content": f"copy: {word}"}], max_tokens=4)
    [request] = replay_requests(str(demo_assets / "eval.jsonl"), base_model, limit=1)
    with local_server("reverser", onnx_repository, extra_args=["--payload-log", str(onnx_log)]) as url:
        infer_logits(url, "reverser", *request)
    chats = core.read_payload_log(hf_log)
    assert [e.prompt for e in chats] == ["copy: sun", "copy: moon"]
    assert all(isinstance(e.reply, str) and e.latency_ms > 0 and not e.error for e in chats)
    [v2] = core.read_payload_log(onnx_log)
    assert v2.prompt is None and v2.prompt_tokens == request[0].shape[1] and not v2.error


def test_kserve_rollback_serves_the_previous_versions_files(tmp_path):
    from kubernetes import client

    registry = production_registry(tmp_path)
    with RecordingServer(lambda req: (200, {})) as api:
        custom = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=api.url)))
        done = actions.rollback_production(registry, "llm", "kserve", kserve_api=custom, namespace="team-a",
                                           inference_service="llm")
    [patch] = api.calls("PATCH")
    assert patch.path == "/apis/serving.kserve.io/v1beta1/namespaces/team-a/inferenceservices/llm"
    assert patch.body == {"spec": {"predictor": {"canaryTrafficPercent": None, "model": {"storageUri": "gs://bucket/served/a"}}}}
    assert done.endswith("InferenceService team-a/llm serves gs://bucket/served/a")


def test_retraining_starts_a_kubeflow_run_of_the_committed_spec():
    with RecordingServer(kfp_api) as server:
        cfg = actions.RetrainConfig.from_dict({"backend": "kfp", "host": server.url,
                                               "arguments": {"base_model": "org/base", "train_data": "gs://b/new.jsonl",
                                                             "eval_data": "gs://b/eval.jsonl"}})
        started = actions.start_retraining(cfg)
    assert started == "Kubeflow run run-9"
    [run] = server.calls("POST")[-1:]
    assert run.path == "/apis/v2beta1/runs" and run.body["experiment_id"] == "exp-1"
    spec = run.body["pipeline_spec"]  # the Kubeflow spec: the pipeline and its kfp-kubernetes platform spec
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "finetune-and-rollout" and "platform_spec" in spec
    assert run.body["runtime_config"]["parameters"]["train_data"] == "gs://b/new.jsonl"


@pytest.mark.parametrize("values, match", [
    ({"on_breach": ["page-someone"]}, r"unknown action\(s\) \['page-someone'\]"),
    ({"refusal_patterns": ["("]}, "is not a regular expression"),
    ({"slo_error_rate": 2}, "slo_error_rate must be in"),
])
def test_bad_monitor_config_is_named(values, match):
    with pytest.raises(ConfigError, match=match):
        core.MonitorConfig.from_dict(values)


def test_retrain_config_is_checked():
    with pytest.raises(ConfigError, match="RetrainConfig.backend must be one of"):
        actions.RetrainConfig.from_dict({"backend": "local"})
    with pytest.raises(ConfigError, match="needs project and a gs:// pipeline_root"):
        actions.RetrainConfig.from_dict({"backend": "vertex"})


def test_cli_exits_1_on_a_breach_and_0_when_healthy(demo_assets, tmp_path, capsys):
    from kfp_llmops.cli import main

    registry = production_registry(tmp_path)
    reference = core.reference_pairs(str(demo_assets / "train.jsonl"))
    healthy = record(tmp_path / "healthy.jsonl", like_training(reference))
    drifted = record(tmp_path / "drifted.jsonl", drifting())
    common = ["--reference", str(demo_assets / "train.jsonl"), "--registry-uri", registry.uri, "--out"]
    assert main(["monitor", str(healthy), *common, str(tmp_path / "ok")]) == 0
    assert main(["monitor", str(drifted), *common, str(tmp_path / "bad")]) == 1
    saved = json.loads((tmp_path / "bad" / "monitor.json").read_text())
    assert saved["breached"] is True and saved["version"] == "2" and saved["actions"] == []  # no on_breach: report only
    check_html((tmp_path / "bad" / "monitor.html").read_text(), plots=1)
    assert registry.aliases("llm")[PRODUCTION] == "2"


def test_slos_come_from_prometheus_for_the_whole_production_service(reference, tmp_path):
    """KServe: Knative's queue-proxy metrics of the InferenceService's predictor service, every revision."""
    queries = []

    def prometheus(req):
        query = req.query["query"]
        queries.append(query)
        assert 'service_name="llm-predictor"' in query and 'namespace_name="team-a"' in query and "[3600s]" in query
        value = 0.8 if query.startswith("histogram_quantile") else 30.0 if "5xx" in query else 1000.0
        return 200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]}}

    cfg = core.MonitorConfig(slo_p95_ms=500)
    with RecordingServer(prometheus) as prom:
        stats = core.prometheus_slo(prom.url, "kserve", cfg, namespace="team-a", inference_service="llm")
    assert (stats.requests, stats.errors, stats.p95_ms) == (1000.0, 30.0, 800.0) and len(queries) == 3
    log = record(tmp_path / "payloads.jsonl", like_training(reference))  # the log itself is fast and error-free
    result = core.monitor(core.read_payload_log(log), reference, cfg, slo_stats=stats)
    failed = {c.name: c for c in result.checks if c.breached}
    assert set(failed) == {"error rate", "p95 latency ms"} and failed["error rate"].note == "Prometheus"
    with pytest.raises(ConfigError, match="the local target's SLOs come from its payload log"):
        core.prometheus_slo("http://x", "local", cfg, namespace="", inference_service="llm")


def test_vertex_rollback_deploys_the_previous_version_and_retraining_creates_a_pipeline_job(tmp_path):
    from fake_vertex import PARENT, FakeVertex
    from google.cloud import aiplatform_v1

    from kfp_llmops.vertex_api import gapic_client

    registry = production_registry(tmp_path)

    class Versions:  # the registry's versions as Vertex AI Model Registry resources
        def __getattr__(self, name):
            return getattr(registry, name)

        def get_alias(self, name, alias):
            found = registry.get_alias(name, alias)
            return found and type(found)(found.name, found.version, found.source, found.digest, found.created,
                                         found.tags, f"{PARENT}/models/42@{found.version}")

    fake = FakeVertex()
    endpoint = fake.add_endpoint("7", deployed={"5": f"{PARENT}/models/42@2"}, split={"5": 100})
    jobs = []

    def vertex_api(req):
        if req.method == "POST" and req.path == f"/v1/{PARENT}/pipelineJobs":
            jobs.append(req.body)
            return 200, {**req.body, "name": f"{PARENT}/pipelineJobs/77"}
        return fake(req)

    with RecordingServer(vertex_api) as api:
        client = gapic_client(aiplatform_v1.EndpointServiceClient, "us-central1", api.url)
        done = actions.rollback_production(Versions(), "llm", "vertex", vertex_client=client, vertex_endpoint=endpoint)
        cfg = actions.RetrainConfig.from_dict({"backend": "vertex", "project": "p", "location": "us-central1",
                                               "pipeline_root": "gs://b/root", "api_endpoint": api.url,
                                               "arguments": {"base_model": "org/base", "train_data": "gs://b/new.jsonl",
                                                             "eval_data": "gs://b/eval.jsonl"}})
        started = actions.start_retraining(cfg)
    assert [m["modelVersionId"] for m in fake.endpoints[endpoint]["deployedModels"]] == ["1"]
    assert done.startswith("registry: llm production 2 -> 1; endpoint ") and registry.aliases("llm")[PRODUCTION] == "1"
    assert started == f"Vertex AI pipeline job {PARENT}/pipelineJobs/77"
    [job] = jobs
    assert job["runtimeConfig"]["parameterValues"]["train_data"] == "gs://b/new.jsonl"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "finetune-and-rollout"
