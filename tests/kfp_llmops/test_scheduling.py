"""`kfp-llmops schedule`: a Kubeflow recurring run and a Vertex AI schedule of the committed compiled spec, checked
against recording stand-ins of both APIs (the exact bodies they receive)."""

import pytest
import yaml

from kfp_llmops.cli import main
from kfp_llmops.errors import ConfigError
from kfp_llmops.scheduling import ScheduleSpec
from fake_kfp import kfp_api
from recording_server import RecordingServer

PARAMS = ["--param", "base_model=org/base", "--param", "train_data=gs://b/train.jsonl", "--param", "eval_data=gs://b/eval.jsonl"]


def test_spec_checks_the_cron_and_renders_it_per_platform():
    spec = ScheduleSpec("nightly", "0 3 * * 1")
    assert spec.kfp_cron() == "0 0 3 * * 1" and spec.vertex_cron() == "TZ=UTC 0 3 * * 1"
    with pytest.raises(ConfigError, match="must have 5 fields"):
        ScheduleSpec("nightly", "0 0 3 * * 1")
    with pytest.raises(ConfigError, match="Kubeflow Pipelines runs schedules in UTC"):
        ScheduleSpec("nightly", "0 3 * * 1", time_zone="Europe/Berlin").kfp_cron()
    assert ScheduleSpec("n", "0 3 * * 1", time_zone="Europe/Berlin").vertex_cron() == "TZ=Europe/Berlin 0 3 * * 1"


def test_kubeflow_recurring_run_of_the_committed_spec(capsys):
    with RecordingServer(kfp_api) as server:
        code = main(["schedule", "--backend", "kfp", "--host", server.url, "--cron", "30 2 * * *", "--name", "nightly", *PARAMS])
    assert code == 0, (capsys.readouterr().err, [(r.method, r.path) for r in server.requests])
    assert "created recurring run rr-1 (nightly: '0 30 2 * * *' UTC" in capsys.readouterr().out
    [body] = [r.body for r in server.calls("POST") if r.path == "/apis/v2beta1/recurringruns"]
    assert body["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *"
    assert body["max_concurrency"] == 1 and body["mode"] == "ENABLE" and body["no_catchup"] is True
    assert body["experiment_id"] == "exp-1" and body["display_name"] == "nightly"
    assert body["runtime_config"]["parameters"] == {"base_model": "org/base", "train_data": "gs://b/train.jsonl",
                                                    "eval_data": "gs://b/eval.jsonl"}
    # the compiled spec as committed (kfp-kubernetes settings included), not a recompiled one
    committed = list(yaml.safe_load_all(open("pipelines/compiled/kfp/finetune-and-rollout.yaml")))
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"] == committed[0]["pipelineInfo"]
    assert body["pipeline_spec"]["platform_spec"] == committed[1]


def test_vertex_schedule_creates_the_pipeline_job_on_the_cron(capsys):
    seen = {}

    def vertex_api(req):
        if req.method == "POST" and req.path == "/v1/projects/p/locations/us-central1/schedules":
            seen.update(req.body)
            return 200, {**req.body, "name": "projects/p/locations/us-central1/schedules/42", "state": "ACTIVE"}
        return 404, {}

    with RecordingServer(vertex_api) as server:
        code = main(["schedule", "--backend", "vertex", "--project", "p", "--location", "us-central1", "--pipeline-root",
                     "gs://b/root", "--cron", "0 3 * * 1", "--time-zone", "Europe/Berlin", "--api-endpoint", server.url,
                     *PARAMS])
    assert code == 0, capsys.readouterr().err
    assert "created schedule projects/p/locations/us-central1/schedules/42" in capsys.readouterr().out
    assert seen["cron"] == "TZ=Europe/Berlin 0 3 * * 1" and seen["maxConcurrentRunCount"] == "1"
    job = seen["createPipelineJobRequest"]["pipelineJob"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://b/root"
    values = job["runtimeConfig"]["parameterValues"]
    assert values["train_data"] == "gs://b/train.jsonl" and values["registry_uri"] == "vertex://projects/p/locations/us-central1"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "finetune-and-rollout"


@pytest.mark.parametrize("argv, message", [
    (["--cron", "0 3 * * 1"], "schedule needs --backend kfp or vertex"),
    (["--backend", "kfp", "--host", "http://127.0.0.1:9", "--cron", "0 3 * *"], "must have 5 fields"),
    (["--backend", "kfp", "--host", "http://127.0.0.1:9", "--cron", "0 3 * * 1", "--time-zone", "Asia/Tokyo"], "in UTC"),
    (["--backend", "kfp", "--host", "http://127.0.0.1:9", "--cron", "0 3 * * 1"], "cannot reach the Kubeflow Pipelines API"),
])
def test_schedule_mistakes_are_named(argv, message, capsys):
    assert main(["schedule", *argv, *PARAMS]) == 2
    assert message in capsys.readouterr().err


def test_the_monitor_pipeline_is_scheduled_like_any_other(capsys):
    with RecordingServer(kfp_api) as server:
        code = main(["schedule", "--backend", "kfp", "--host", server.url, "--pipeline", "monitor", "--cron", "0 * * * *",
                     "--param", "payload_log=gs://b/payloads/", "--param", "reference_data=gs://b/train.jsonl",
                     "--param", 'monitor_config={"on_breach": ["rollback"]}'])
    assert code == 0, capsys.readouterr().err
    [body] = [r.body for r in server.calls("POST") if r.path == "/apis/v2beta1/recurringruns"]
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "monitor"
    assert body["runtime_config"]["parameters"]["monitor_config"] == {"on_breach": ["rollback"]}
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *"
