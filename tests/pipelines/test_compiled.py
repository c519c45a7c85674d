"""The committed specs: strict parsing for Kubeflow, one document for Vertex AI, and up to date with the code."""

from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_llmops import __version__
from kfp_llmops.pipelines.compiling import DEFAULT_OUT, check
from kfp_llmops.images import RUNTIME_IMAGE
from kfp_llmops.pipelines.registry import PIPELINES

KFP_SPECS = [DEFAULT_OUT / "kfp" / f"{name}.yaml" for name in sorted(PIPELINES)]
VERTEX_SPECS = [DEFAULT_OUT / "vertex" / f"{name}.yaml" for name in sorted(PIPELINES)]


def test_committed_specs_match_the_code():
    assert check() == []


def test_check_names_a_stale_file(tmp_path):
    for target in ("kfp", "vertex"):
        (tmp_path / target).mkdir()
        for spec in DEFAULT_OUT.joinpath(target).glob("*.yaml"):
            (tmp_path / target / spec.name).write_text(spec.read_text().replace(RUNTIME_IMAGE, "runtime:latest"))
    problems = check(tmp_path)
    assert len(problems) == 2 * len(PIPELINES) and all("differs from what the code compiles" in p for p in problems)
    assert "runtime:latest" in problems[0]
    assert any(str(tmp_path / "kfp" / "finetune-and-rollout.yaml") in p for p in problems)


@pytest.mark.parametrize("path", KFP_SPECS, ids=lambda p: p.name)
def test_kfp_spec_parses_strictly(path: Path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) in (1, 2)
    json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())  # unknown fields rejected
    if len(docs) == 2:
        platform = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
        executors = json_format.MessageToDict(platform.platforms["kubernetes"].deployment_spec)["executors"]
        for cfg in executors.values():
            json_format.ParseDict(cfg, kubernetes_executor_config_pb2.KubernetesExecutorConfig())


def test_finetune_spec_has_the_kubernetes_settings():
    _, platform_doc = yaml.safe_load_all((DEFAULT_OUT / "kfp" / "finetune-and-rollout.yaml").read_text())
    platform = json_format.ParseDict(platform_doc, pipeline_spec_pb2.PlatformSpec())
    executors = json_format.MessageToDict(platform.platforms["kubernetes"].deployment_spec)["executors"]
    configs = {name: json_format.ParseDict(cfg, kubernetes_executor_config_pb2.KubernetesExecutorConfig()) for name, cfg in executors.items()}
    train = configs["exec-train-lora"]
    assert [(t.key, t.operator, t.effect) for t in train.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert dict(train.node_selector.labels) == {"nvidia.com/gpu.present": "true"}
    for step in ("exec-resolve-production", "exec-register-model", "exec-register-model-2", "exec-register-model-3",
                 "exec-await-approval", "exec-await-approval-2", "exec-await-approval-3", "exec-rollout-model",
                 "exec-rollout-model-2", "exec-rollout-model-3", "exec-restore-stable"):
        [secret] = configs[step].secret_as_env
        assert secret.secret_name == "model-registry-credentials"
        assert {k.env_var for k in secret.key_to_env} == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    for step in ("exec-rollout-model", "exec-rollout-model-2", "exec-rollout-model-3", "exec-restore-stable",
                 "exec-staging-smoke-test", "exec-staging-smoke-test-2", "exec-staging-smoke-test-3"):  # the rollout token
        [volume] = configs[step].secret_as_volume
        assert (volume.secret_name, volume.mount_path) == ("kfp-llmops-rollout-token", "/var/run/secrets/kfp-llmops/rollout")
    [volume] = train.secret_as_volume  # may create TrainJobs (multi-node training)
    assert (volume.secret_name, volume.mount_path) == ("kfp-llmops-trainer-token", "/var/run/secrets/kfp-llmops/trainer")
    assert [(p.constant, p.mount_path) for p in train.pvc_mount] == [("kfp-llmops-shared", "/mnt/shared")]
    [hub] = configs["exec-fetch-base-model"].secret_as_env  # a token for gated base models, when the Secret exists
    assert (hub.secret_name, hub.optional) == ("huggingface-token", True)
    assert [(k.secret_key, k.env_var) for k in hub.key_to_env] == [("token", "HF_TOKEN")]
    with_secrets = {name for name, c in configs.items() if c.secret_as_env or c.secret_as_volume}
    assert with_secrets == {"exec-fetch-base-model", "exec-train-lora", "exec-resolve-production", "exec-register-model", "exec-rollout-model",
                            "exec-register-model-2", "exec-rollout-model-2", "exec-restore-stable",
                            "exec-await-approval", "exec-await-approval-2",
                            "exec-staging-smoke-test", "exec-staging-smoke-test-2",  # -2: serve-hf
                            "exec-register-model-3", "exec-rollout-model-3", "exec-await-approval-3",
                            "exec-staging-smoke-test-3"}  # -3: serve-adapter


@pytest.mark.parametrize("path", KFP_SPECS + VERTEX_SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_secret_value_in_a_compiled_spec(path: Path):
    """Credentials reach steps only as Secret references: no parameter is named like a credential and
    detect-secrets finds nothing in the spec."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    pipeline_doc = next(yaml.safe_load_all(path.read_text()))
    params = pipeline_doc["root"].get("inputDefinitions", {}).get("parameters", {})
    assert not [p for p in params if any(w in p.lower() for w in ("password", "token", "secret", "credential", "api_key"))]
    found = SecretsCollection()
    with default_settings():
        found.scan_file(str(path))
    lines = path.read_text().splitlines()
    flagged = [lines[s.line_number - 1].strip() for secrets in found.data.values() for s in secrets]
    # "secretName: ..." and "secretKey: password" name a Kubernetes Secret and a key in it (kfp-kubernetes): references
    assert [f for f in flagged if not f.startswith(("secretKey: ", "secretName: "))] == []


def test_the_rollout_runs_under_an_exit_handler_that_restores_stable():
    pipeline_doc = next(yaml.safe_load_all((DEFAULT_OUT / "kfp" / "finetune-and-rollout.yaml").read_text()))
    tasks = pipeline_doc["root"]["dag"]["tasks"]
    assert tasks["restore-stable"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    [guard] = tasks["restore-stable"]["dependentTasks"]
    assert tasks[guard]["taskInfo"]["name"] == "rollout-guard"
    guarded = pipeline_doc["components"][tasks[guard]["componentRef"]["name"]]["dag"]["tasks"]
    assert "validate-dataset" in guarded and any(t.startswith("condition-") for t in guarded)


@pytest.mark.parametrize("path", KFP_SPECS + VERTEX_SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_executor_runs_our_pinned_image_and_installs_nothing(path: Path):
    pipeline_doc = next(yaml.safe_load_all(path.read_text()))
    executors = pipeline_doc["deploymentSpec"]["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    assert containers and {c["image"] for c in containers} == {RUNTIME_IMAGE}
    assert RUNTIME_IMAGE.endswith(f":{__version__}")
    for c in containers:
        assert "pip install" not in " ".join(c.get("command", []) + c.get("args", []))


@pytest.mark.parametrize("path", VERTEX_SPECS, ids=lambda p: p.name)
def test_vertex_spec_is_one_document_and_builds_a_pipeline_job_offline(path: Path):
    from google.auth.credentials import AnonymousCredentials

    from kfp_llmops.cli.submit import vertex_job

    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 1
    json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    required = {name: f"gs://b/{name}" for name, spec in docs[0]["root"]["inputDefinitions"]["parameters"].items()
                if not spec.get("isOptional")}
    job = vertex_job(
        str(path),
        required,
        project="my-project",
        location="us-central1",
        pipeline_root="gs://b/root",
        credentials=AnonymousCredentials(),
    )
    runtime = job._gca_resource.runtime_config
    assert runtime.gcs_output_directory == "gs://b/root"
    assert {k: runtime.parameter_values[k] for k in required} == required


@pytest.mark.parametrize("name", ["finetune-and-rollout", "eval-only"])
def test_evaluation_asks_for_a_gpu_and_export_for_memory_in_both_targets(name: str):
    for target, accelerator in (("kfp", "nvidia.com/gpu"), ("vertex", "NVIDIA_L4")):
        docs = list(yaml.safe_load_all((DEFAULT_OUT / target / f"{name}.yaml").read_text()))
        executors = docs[0]["deploymentSpec"]["executors"]
        evaluate = executors["exec-evaluate-model"]["container"]["resources"]
        assert (evaluate["accelerator"]["resourceType"], evaluate["accelerator"]["resourceCount"]) == (accelerator, "1")
        assert evaluate["resourceMemoryRequest"] == "32G"
        if name == "finetune-and-rollout":
            export = executors["exec-export-onnx"]["container"]["resources"]
            assert "accelerator" not in export and export["resourceMemoryLimit"] == "64G"
        if target == "kfp":
            platform = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
            config = json_format.MessageToDict(platform.platforms["kubernetes"].deployment_spec)["executors"]["exec-evaluate-model"]
            assert config["tolerations"][0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize("path", [DEFAULT_OUT / t / "finetune-and-rollout.yaml" for t in ("kfp", "vertex")],
                         ids=lambda p: p.parent.name)
def test_each_branch_is_conditioned_on_its_own_decision(path: Path):
    """Guards a KFP 2.17 compiler trap: a dsl.Elif nested in a branch re-targeted the outer dsl.Else (data-invalid)
    to the inner dsl.If (gate-passed), so a blocked gate ran stop-on-invalid-data."""
    spec = next(yaml.safe_load_all(path.read_text()))
    conditions, approvals = {}, []

    def walk(component):
        for task in (component.get("dag") or {}).get("tasks", {}).values():
            if "condition" in task.get("triggerPolicy", {}):
                conditions[task["taskInfo"]["name"]] = " ".join(task["triggerPolicy"]["condition"].split())
                if task["taskInfo"]["name"] == "approved":  # one per serving format
                    approvals.append(conditions["approved"])

    walk(spec["root"])
    for name, comp in spec["components"].items():
        walk(comp)
    assert "validate-dataset-Output" in conditions["data-valid"] and "validate-dataset-Output" in conditions["data-invalid"]
    assert conditions["data-invalid"].startswith("!(")
    assert "regression-gate-Output" in conditions["gate-passed"]
    assert "'onnx'" in conditions["serve-onnx"] and "'hf'" in conditions["serve-hf"]
    assert "'adapter'" in conditions["serve-adapter"]
    assert sorted(approvals) == sorted(f"inputs.parameter_values['pipelinechannel--{t}-Output'] == true"
                                       for t in ("await-approval", "await-approval-2", "await-approval-3"))  # its own


def _all_tasks(pipeline_doc: dict) -> dict:
    """Every task of the spec, at any depth (conditions, the exit handler's group, loops), by task name."""
    found = dict(pipeline_doc["root"]["dag"]["tasks"])
    for component in pipeline_doc["components"].values():
        found.update(component.get("dag", {}).get("tasks", {}))
    return found


@pytest.mark.parametrize("path", [DEFAULT_OUT / t / f"{n}.yaml" for t in ("kfp", "vertex")
                                  for n in ("finetune-and-rollout", "lora-sweep")], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_step_that_loads_the_base_reads_fetch_base_models_copy_which_is_never_cached(path: Path):
    tasks = _all_tasks(next(yaml.safe_load_all(path.read_text())))
    assert tasks["fetch-base-model"]["cachingOptions"] == {}  # enableCache false is left out of the JSON form
    def reads_the_copy(task) -> bool:  # directly, or through the channel a condition's or loop's group passes on
        base = task.get("inputs", {}).get("artifacts", {}).get("base", {})
        return (base.get("taskOutputArtifact", {}).get("producerTask") == "fetch-base-model"
                or base.get("componentInputArtifact") == "pipelinechannel--fetch-base-model-base")

    readers = {name for name, task in tasks.items() if reads_the_copy(task)}
    loaders = {"prepare-dataset", "train-lora"}
    if path.stem == "finetune-and-rollout":
        loaders |= {"evaluate-model", "export-onnx", "merge-adapter"}
    assert readers == loaders
