"""Per-target task settings. ``kfp`` adds kfp-kubernetes settings; ``vertex`` uses only what Vertex AI reads.

Vertex AI's loader reads a single YAML document, and kfp-kubernetes adds a second one (the PlatformSpec), so the
kfp-kubernetes calls happen only for the ``kfp`` target. kfp.local ignores both.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("kfp", "vertex")


@dataclass(frozen=True)
class ClusterSettings:
    gpu_toleration_key: str = "nvidia.com/gpu"
    gpu_node_selector_key: str = "nvidia.com/gpu.present"
    gpu_node_selector_value: str = "true"
    kfp_accelerator: str = "nvidia.com/gpu"
    vertex_accelerator: str = "NVIDIA_L4"
    registry_secret: str = "model-registry-credentials"
    registry_secret_env: tuple[tuple[str, str], ...] = (
        ("username", "MLFLOW_TRACKING_USERNAME"),
        ("password", "MLFLOW_TRACKING_PASSWORD"),
    )
    # the token of the least-privilege ServiceAccount in manifests/rollout-rbac.yaml
    rollout_secret: str = "kfp-llmops-rollout-token"
    rollout_mount_path: str = "/var/run/secrets/kfp-llmops/rollout"
    # training (manifests/training.yaml): the shared volume and the TrainJob ServiceAccount's token
    shared_pvc: str = "kfp-llmops-shared"
    shared_mount_path: str = "/mnt/shared"
    trainer_secret: str = "kfp-llmops-trainer-token"
    trainer_mount_path: str = "/var/run/secrets/kfp-llmops/trainer"
    # a Hugging Face token for gated or private base models (optional: public models need none)
    hub_secret: str = "huggingface-token"
    hub_secret_key: str = "token"


DEFAULT_SETTINGS = ClusterSettings()


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown compile target {target!r}; expected one of {TARGETS}")


def gpu_task(task, target: str, settings: ClusterSettings = DEFAULT_SETTINGS, memory: str = "16G"):
    """Asks for one GPU (and ``memory`` of RAM); on Kubeflow also tolerates the GPU taint and selects GPU nodes.
    Training and evaluation load the base in bf16 there (fp16 on GPUs without bf16)."""
    check_target(target)
    task.set_cpu_request("4").set_memory_request(memory)
    if target == "kfp":
        from kfp import kubernetes

        task.set_accelerator_type(settings.kfp_accelerator).set_accelerator_limit(1)
        kubernetes.add_toleration(task, key=settings.gpu_toleration_key, operator="Exists", effect="NoSchedule")
        kubernetes.add_node_selector(
            task, label_key=settings.gpu_node_selector_key, label_value=settings.gpu_node_selector_value
        )
    else:
        task.set_accelerator_type(settings.vertex_accelerator).set_accelerator_limit(1)
    return task


def export_task(task, target: str, memory: str = "64G"):
    """ONNX export merges the adapter into fp32 weights and checks parity on CPU (onnxruntime's reference): it needs
    RAM for the fp32 model about three times over (torch weights, the traced graph, the session), not a GPU. 64G
    holds a ~4B model; raise it for 8B (about 100G)."""
    check_target(target)
    task.set_cpu_request("8").set_memory_request(memory).set_memory_limit(memory)
    return task


def hub_credentials(task, target: str, settings: ClusterSettings = DEFAULT_SETTINGS):
    """On Kubeflow, ``HF_TOKEN`` from the Secret ``huggingface-token`` when it exists (gated or private base models);
    a run without the Secret starts all the same. On Vertex AI the step reads the hub without a token."""
    check_target(target)
    if target == "kfp":
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, secret_name=settings.hub_secret,
                                     secret_key_to_env={settings.hub_secret_key: "HF_TOKEN"}, optional=True)
    return task


def registry_credentials(task, target: str, settings: ClusterSettings = DEFAULT_SETTINGS):
    """On Kubeflow, the registry credentials reach the step as env vars from a Secret, never as parameters."""
    check_target(target)
    if target == "kfp":
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, secret_name=settings.registry_secret,
                                     secret_key_to_env=dict(settings.registry_secret_env))
    return task


def rollout_credentials(task, target: str, settings: ClusterSettings = DEFAULT_SETTINGS):
    """On Kubeflow, the rollout step talks to the Kubernetes API as the ``kfp-llmops-rollout`` ServiceAccount (it
    may only get, list, watch and patch InferenceServices): its token Secret is mounted, never passed as a parameter."""
    check_target(target)
    if target == "kfp":
        from kfp import kubernetes

        kubernetes.use_secret_as_volume(task, secret_name=settings.rollout_secret, mount_path=settings.rollout_mount_path,
                                        optional=True)
    return task


def training_volumes(task, target: str, settings: ClusterSettings = DEFAULT_SETTINGS):
    """On Kubeflow, the training step mounts the shared volume (checkpoints to resume from; a TrainJob's data and
    results) and the token of the ServiceAccount that may create TrainJobs (manifests/training.yaml)."""
    check_target(target)
    if target == "kfp":
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=settings.shared_pvc, mount_path=settings.shared_mount_path)
        kubernetes.use_secret_as_volume(task, secret_name=settings.trainer_secret, mount_path=settings.trainer_mount_path,
                                        optional=True)
    return task
