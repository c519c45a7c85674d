"""Multi-node training: on Kubeflow, a Kubeflow Trainer ``TrainJob`` (trainer.kubeflow.org/v1alpha1); on Vertex AI
(no Kubeflow Trainer there), a Vertex AI ``CustomJob`` with a chief and a worker pool. The component renders the job,
creates it and waits for it; never imports kfp.

The TrainJob runs our runtime image on ``num_nodes`` nodes under the cluster's torch runtime (default the
``torch-distributed`` ClusterTrainingRuntime, which sets torchrun's ``PET_*`` rendezvous environment), with the same
entry point as in-task data parallelism (``train_lora.distributed``). Data and results travel through ``shared_dir``,
a volume (a ReadWriteMany PVC) that both the KFP step and the runtime's pods mount; checkpoints go there too, so a
retried step resumes. The job name is derived from the inputs, so a retried step finds its TrainJob instead of
starting a second one.

On Vertex AI the same ``trainer_job`` settings give a CustomJob: pool 0 one chief replica, pool 1 ``num_nodes - 1``
workers, each ``machine_type`` with ``gpus_per_node`` x ``accelerator_type``, running torchrun with the rendezvous
Vertex AI sets for distributed PyTorch (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` nodes, ``RANK`` the node's
rank); ``shared_dir`` is a Cloud Storage FUSE path (``/gcs/BUCKET/...``) that pipeline steps and custom jobs mount.
"""

from __future__ import annotations

import hashlib
import json
import time

from kfp_llmops.configs import PLATFORMS, TrainerJobSpec
from kfp_llmops.errors import ConfigError, UserInputError

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
TRAINER_TOKEN_DIR = "/var/run/secrets/kfp-llmops/trainer"  # pipelines/platform.py mounts the token Secret here


def check_platform(spec: TrainerJobSpec, platform: str) -> None:
    if platform not in PLATFORMS:
        raise ConfigError(f"trainer platform must be one of {PLATFORMS}, got {platform!r}")
    if platform == "kubeflow" and not spec.namespace:
        raise ConfigError("trainer_job.namespace is required on Kubeflow (where the TrainJob is created)")
    if platform == "vertex" and not spec.shared_dir.startswith("/gcs/"):
        raise ConfigError(f"trainer_job.shared_dir must be a Cloud Storage FUSE path (/gcs/BUCKET/...) on Vertex AI, "
                          f"where the pipeline step and the custom job's machines both see it; got {spec.shared_dir!r}")


def vertex_worker_pools(spec: TrainerJobSpec, *, base_model: str, config: dict, prepared_dir: str, out_dir: str) -> list[dict]:
    """The CustomJob's worker pool specs: one chief, ``num_nodes - 1`` workers, the same container on each."""
    import shlex

    from kfp_llmops.images import RUNTIME_IMAGE

    args = ["--prepared", prepared_dir, "--base-model", base_model, "--config", json.dumps(config, sort_keys=True),
            "--out", out_dir]
    launch = ("exec torchrun --nnodes=${WORLD_SIZE:-1} --node_rank=${RANK:-0} --master_addr=${MASTER_ADDR:-localhost} "
              f"--master_port=${{MASTER_PORT:-29500}} --nproc_per_node={spec.procs_per_node} "
              "-m kfp_llmops.components.training.train_lora.distributed " + " ".join(shlex.quote(a) for a in args))
    machine = {"machine_type": spec.machine_type}
    if spec.gpus_per_node:
        machine.update(accelerator_type=spec.accelerator_type, accelerator_count=spec.gpus_per_node)
    container = {"image_uri": spec.image or RUNTIME_IMAGE, "command": ["bash", "-c", launch],
                 "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}]}
    pools = [{"machine_spec": machine, "replica_count": 1, "container_spec": container}]
    if spec.num_nodes > 1:
        pools.append({"machine_spec": dict(machine), "replica_count": spec.num_nodes - 1, "container_spec": container})
    return pools


def vertex_custom_job(name: str, spec: TrainerJobSpec, pools: list[dict], credentials=None):
    """The ``aiplatform.CustomJob`` (built offline; ``run`` submits it)."""
    from google.cloud import aiplatform

    bucket = spec.staging_bucket or "gs://" + spec.shared_dir.removeprefix("/gcs/").split("/", 1)[0] + "/staging"
    return aiplatform.CustomJob(display_name=name, worker_pool_specs=pools, staging_bucket=bucket,
                                project=spec.project or None, location=spec.location or None, credentials=credentials,
                                labels={"managed-by": "kfp-llmops"})


def job_name(prepared_sha256: str, base_model: str, config: dict, spec: TrainerJobSpec) -> str:
    """A DNS-1123 name that is the same for the same inputs (a retried step reattaches to its job)."""
    key = json.dumps([prepared_sha256, base_model, config, spec.num_nodes, spec.procs_per_node], sort_keys=True)
    return "lora-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def render_train_job(name: str, spec: TrainerJobSpec, *, base_model: str, config: dict, prepared_dir: str,
                     out_dir: str) -> dict:
    from kfp_llmops.images import RUNTIME_IMAGE

    resources = {"requests": {"cpu": spec.cpu, "memory": spec.memory}, "limits": {"memory": spec.memory}}
    if spec.gpus_per_node:
        resources["limits"]["nvidia.com/gpu"] = str(spec.gpus_per_node)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": {"app.kubernetes.io/managed-by": "kfp-llmops"}},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": spec.runtime_kind, "name": spec.runtime},
            "trainer": {
                "image": spec.image or RUNTIME_IMAGE,
                "command": ["torchrun", "-m", "kfp_llmops.components.training.train_lora.distributed"],
                "args": ["--prepared", prepared_dir, "--base-model", base_model, "--config", json.dumps(config, sort_keys=True),
                         "--out", out_dir],
                "numNodes": spec.num_nodes,
                "numProcPerNode": spec.procs_per_node,
                "resourcesPerNode": resources,
                "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
            },
        },
    }


def condition(job: dict, kind: str) -> dict | None:
    for c in (job.get("status") or {}).get("conditions", []):
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def run_train_job(api, manifest: dict, spec: TrainerJobSpec, *, log=print, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Creates the TrainJob (or finds the one a previous attempt created) and waits until it completes."""
    from kubernetes.client.exceptions import ApiException

    name, ns = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest)
        log(f"created TrainJob {ns}/{name}: {spec.num_nodes} nodes x {spec.procs_per_node} processes")
    except ApiException as exc:
        if exc.status != 409:
            raise UserInputError(f"creating TrainJob {ns}/{name} failed: {exc.status} {exc.reason}") from None
        log(f"TrainJob {ns}/{name} exists (a retried step): waiting for it")
    deadline = clock() + spec.timeout_s
    while True:
        job = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        if condition(job, "Complete"):
            log(f"TrainJob {ns}/{name} completed")
            return job
        failed = condition(job, "Failed")
        if failed:
            raise UserInputError(f"TrainJob {ns}/{name} failed: {failed.get('reason', '')}: {failed.get('message', '')}; "
                                 f"see `kubectl logs -n {ns} -l jobset.sigs.k8s.io/jobset-name={name}`")
        if clock() >= deadline:
            raise UserInputError(f"TrainJob {ns}/{name} did not complete within {spec.timeout_s:.0f} s")
        sleep(spec.poll_s)


def train_on_trainer(api, spec: TrainerJobSpec, *, prepared_dir: str, prepared_sha256: str, base_model: str,
                     config: dict, out_dir: str, log=print, sleep=time.sleep, platform: str = "kubeflow") -> dict:
    """Stages the prepared dataset in ``shared_dir``, runs the TrainJob (``platform`` kubeflow; ``api`` a
    CustomObjectsApi) or the Vertex AI CustomJob (``platform`` vertex), copies the adapter to ``out_dir`` and returns
    rank 0's metrics. Checkpoints default to ``shared_dir/<job>/checkpoints`` (not with strategy fsdp)."""
    import shutil
    from pathlib import Path

    check_platform(spec, platform)
    name = job_name(prepared_sha256, base_model, config, spec)
    work = Path(spec.shared_dir) / name
    staged = work / "prepared"
    if not staged.exists():
        shutil.copytree(prepared_dir, work / ".prepared.tmp", dirs_exist_ok=True)
        (work / ".prepared.tmp").rename(staged)
    if config.get("strategy", "ddp") != "fsdp":
        config = {**config, "checkpoint_dir": config.get("checkpoint_dir") or str(work / "checkpoints")}
    if platform == "vertex":
        pools = vertex_worker_pools(spec, base_model=base_model, config=config, prepared_dir=str(staged),
                                    out_dir=str(work / "adapter"))
        job = vertex_custom_job(name, spec, pools)
        log(f"Vertex AI CustomJob {name}: {spec.num_nodes} x {spec.machine_type}"
            + (f" with {spec.gpus_per_node} {spec.accelerator_type}" if spec.gpus_per_node else ""))
        job.run(service_account=spec.service_account or None, timeout=int(spec.timeout_s), sync=True)
    else:
        manifest = render_train_job(name, spec, base_model=base_model, config=config, prepared_dir=str(staged),
                                    out_dir=str(work / "adapter"))
        run_train_job(api, manifest, spec, log=log, sleep=sleep)
    result = work / "adapter" / "result.json"
    if not result.is_file():
        raise UserInputError(f"TrainJob {name} completed but wrote no {result}: is {spec.shared_dir} the same volume "
                             "in the training pods?")
    shutil.copytree(work / "adapter", out_dir, dirs_exist_ok=True)
    return json.loads(result.read_text(encoding="utf-8"))
