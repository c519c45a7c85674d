"""Multi-node training on Kubeflow Trainer: the rendered TrainJob, and the component's create-and-wait against a
recording stand-in of the Kubernetes API whose "controller" runs the TrainJob's own command (torchrun, 2 CPU
processes on gloo) on this machine."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
from recording_server import RecordingServer

from kfp_llmops.components.data.prepare_dataset.core import prepare
from kfp_llmops.tokenized import write_prepared
from kfp_llmops.components.training.train_lora import core, trainer_job as tj
from kfp_llmops.config import from_dict
from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.images import RUNTIME_IMAGE
from k8s_schema import crd_errors

SPEC = {"namespace": "team-a", "num_nodes": 2, "shared_dir": "/mnt/shared", "gpus_per_node": 8}


def test_rendered_train_job_is_valid(trainer_crds):
    spec = from_dict(tj.TrainerJobSpec, SPEC)
    name = tj.job_name("ab" * 32, "org/base", {"r": 16}, spec)
    manifest = tj.render_train_job(name, spec, base_model="org/base", config={"r": 16}, prepared_dir="/mnt/shared/p",
                                   out_dir="/mnt/shared/a")
    assert crd_errors(manifest, trainer_crds) == []  # Kubeflow Trainer's own TrainJob CRD, strictly
    wrong = {**manifest, "spec": {**manifest["spec"], "trainer": {**manifest["spec"]["trainer"], "nodes": 2}}}
    assert any("nodes" in e for e in crd_errors(wrong, trainer_crds))  # a field the CRD lacks is caught
    trainer = manifest["spec"]["trainer"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{
        "name": "node", "image": trainer["image"], "command": trainer["command"], "args": trainer["args"],
        "env": trainer["env"], "resources": trainer["resourcesPerNode"]}]}}
    kubernetes_validate.validate(pod, "1.30.0", strict=True)
    assert trainer["image"] == RUNTIME_IMAGE and trainer["numNodes"] == 2
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert name == tj.job_name("ab" * 32, "org/base", {"r": 16}, spec) != tj.job_name("cd" * 32, "org/base", {"r": 16}, spec)


@pytest.mark.parametrize("values, message", [
    ({**SPEC, "shared_dir": "pvc"}, "shared_dir must be an absolute path"),
    ({**SPEC, "num_nodes": 0}, "num_nodes and procs_per_node must be >= 1"),
    ({**SPEC, "nodes": 3}, r"TrainerJobSpec: unknown field\(s\) \['nodes'\]"),
])
def test_bad_spec_is_named(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(tj.TrainerJobSpec, values)


class FakeTrainer:
    """The Kubernetes API for TrainJobs, with a controller that runs the job's command on this machine."""

    def __init__(self, fail=False):
        self.jobs, self.procs, self.fail = {}, {}, fail

    def __call__(self, req):
        parts = req.path.strip("/").split("/")  # apis/trainer.kubeflow.org/v1alpha1/namespaces/NS/trainjobs[/NAME]
        if req.method == "POST":
            name = req.body["metadata"]["name"]
            if name in self.jobs:
                return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
            self.jobs[name] = req.body
            self.procs[name] = self._start(req.body["spec"]["trainer"])
            return 201, req.body
        name = parts[-1]
        proc = self.procs[name]
        job = dict(self.jobs[name])
        if proc.poll() is not None:
            ok = proc.returncode == 0
            job["status"] = {"conditions": [{"type": "Complete" if ok else "Failed", "status": "True",
                                             "reason": "JobSetCompleted" if ok else "JobSetFailed", "message": f"exit {proc.returncode}"}]}
        return 200, job

    def _start(self, trainer):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, **{e["name"]: e["value"] for e in trainer["env"]}, "PET_NNODES": str(trainer["numNodes"] // 2),
               "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]), "PET_NODE_RANK": "0",
               "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
        command = [str(Path(sys.executable).parent / trainer["command"][0]), *trainer["command"][1:], *trainer["args"]]
        if self.fail:
            command = [sys.executable, "-c", "raise SystemExit(3)"]
        return subprocess.Popen(command, env=env)


def test_train_job_runs_its_command_and_the_adapter_comes_back(demo_assets, tokenizer, base_model, tmp_path):
    from kubernetes import client

    split = prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer)
    write_prepared(split, tmp_path / "prepared")
    # two "nodes" of one process each, run here as one torchrun with 2 processes (PET_NNODES=1, 2 procs)
    spec = from_dict(tj.TrainerJobSpec, {"namespace": "team-a", "num_nodes": 2, "procs_per_node": 2, "gpus_per_node": 0,
                                         "shared_dir": str(tmp_path / "shared"), "poll_s": 0.5})
    cfg = core.TrainConfig(max_steps=4, batch_size=8, warmup_steps=1).to_dict()
    fake = FakeTrainer()
    lines = []
    with RecordingServer(fake) as server:
        api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=server.url)))
        values = tj.train_on_trainer(api, spec, prepared_dir=str(tmp_path / "prepared"), prepared_sha256="ab" * 32,
                                     base_model=base_model, config=cfg, out_dir=str(tmp_path / "adapter"), log=lines.append)
        again = tj.train_on_trainer(api, spec, prepared_dir=str(tmp_path / "prepared"), prepared_sha256="ab" * 32,
                                    base_model=base_model, config=cfg, out_dir=str(tmp_path / "adapter2"), log=lines.append)
    posts = server.calls("POST")
    assert [r.path for r in posts] == ["/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs"] * 2
    assert len(fake.procs) == 1 and any("exists (a retried step)" in line for line in lines)  # the retry reattached
    assert values["world_size"] == 2 and values["steps"] == 4 and again == values
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    job = next(iter(fake.jobs.values()))
    assert json.loads(job["spec"]["trainer"]["args"][5])["checkpoint_dir"].endswith("/checkpoints")


def test_a_failed_train_job_is_reported(tmp_path):
    from kubernetes import client

    (tmp_path / "prepared").mkdir()
    spec = from_dict(tj.TrainerJobSpec, {"namespace": "team-a", "num_nodes": 2, "shared_dir": str(tmp_path), "poll_s": 0.2})
    with RecordingServer(FakeTrainer(fail=True)) as server:
        api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=server.url)))
        with pytest.raises(UserInputError, match=r"TrainJob team-a/lora-[0-9a-f]{16} failed: JobSetFailed: exit 3; see `kubectl logs"):
            tj.train_on_trainer(api, spec, prepared_dir=str(tmp_path / "prepared"), prepared_sha256="x",
                                base_model="m", config={}, out_dir=str(tmp_path / "out"))


def test_on_vertex_the_same_settings_give_a_custom_job_with_worker_pools():
    """Vertex AI has no Kubeflow Trainer: the pipeline compiled for Vertex trains across nodes as a CustomJob (built
    offline here, never submitted): one chief, num_nodes - 1 workers, torchrun from Vertex's rendezvous variables."""
    from google.auth.credentials import AnonymousCredentials

    spec = from_dict(tj.TrainerJobSpec, {"num_nodes": 4, "shared_dir": "/gcs/my-bucket/training", "procs_per_node": 2,
                                         "gpus_per_node": 2, "project": "p", "location": "us-central1"})
    tj.check_platform(spec, "vertex")
    pools = tj.vertex_worker_pools(spec, base_model="Qwen/Qwen2.5-7B-Instruct", config={"strategy": "fsdp"},
                                   prepared_dir="/gcs/my-bucket/training/j/prepared", out_dir="/gcs/my-bucket/training/j/adapter")
    job = tj.vertex_custom_job("lora-abc", spec, pools, credentials=AnonymousCredentials())
    specs = job._gca_resource.job_spec.worker_pool_specs
    assert [s.replica_count for s in specs] == [1, 3]
    assert all((s.machine_spec.machine_type, s.machine_spec.accelerator_type.name, s.machine_spec.accelerator_count)
               == ("g2-standard-24", "NVIDIA_L4", 2) for s in specs)
    command = list(specs[0].container_spec.command)
    assert command[:2] == ["bash", "-c"] and specs[0].container_spec.image_uri == RUNTIME_IMAGE
    assert ("torchrun --nnodes=${WORLD_SIZE:-1} --node_rank=${RANK:-0} --master_addr=${MASTER_ADDR:-localhost} "
            "--master_port=${MASTER_PORT:-29500} --nproc_per_node=2 -m kfp_llmops.components.training.train_lora.distributed") in command[2]
    assert "'{\"strategy\": \"fsdp\"}'" in command[2] and "--base-model Qwen/Qwen2.5-7B-Instruct" in command[2]
    assert job._gca_resource.job_spec.base_output_directory.output_uri_prefix.startswith("gs://my-bucket/staging")
    with pytest.raises(ConfigError, match=r"shared_dir must be a Cloud Storage FUSE path \(/gcs/BUCKET/...\)"):
        tj.check_platform(from_dict(tj.TrainerJobSpec, {"num_nodes": 2, "shared_dir": "/mnt/shared"}), "vertex")
    with pytest.raises(ConfigError, match="namespace is required on Kubeflow"):
        tj.check_platform(from_dict(tj.TrainerJobSpec, {"num_nodes": 2, "shared_dir": "/mnt/shared"}), "kubeflow")


def test_the_vertex_spec_trains_on_vertex_and_the_kubeflow_spec_on_kubeflow_trainer():
    import yaml

    from kfp_llmops.pipelines.compiling import DEFAULT_OUT

    for target, platform in (("vertex", "vertex"), ("kfp", "kubeflow")):
        spec = next(yaml.safe_load_all((DEFAULT_OUT / target / "finetune-and-rollout.yaml").read_text()))
        train = [t for c in spec["components"].values() for t in (c.get("dag") or {}).get("tasks", {}).values()
                 if t.get("taskInfo", {}).get("name") == "train-lora"][0]
        assert train["inputs"]["parameters"]["trainer_platform"]["runtimeValue"]["constant"] == platform
