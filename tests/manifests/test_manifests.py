"""Every manifest in manifests/ is valid (KServe resources against KServe's CRDs, core ones with kubernetes-validate,
unknown fields being errors), and the rollout's Role is least privilege."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kfp_llmops.deployment import kserve
from kfp_llmops.images import TRITON_IMAGE
from k8s_schema import crd_errors
from kfp_llmops.pipelines.platform import DEFAULT_SETTINGS

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "manifests").glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"


def docs(name: str) -> list[dict]:
    return list(yaml.safe_load_all((MANIFESTS[0].parent / name).read_text()))


def test_there_are_manifests():
    assert {p.name for p in MANIFESTS} == {"inferenceservice.yaml", "inferenceservice-hf.yaml", "servingruntime.yaml",
                                         "inferenceservice-adapter.yaml", "llminferenceservice-lora.yaml",
                                         "rollout-rbac.yaml", "staging-rbac.yaml", "training.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path, kserve_crds):
    for doc in yaml.safe_load_all(path.read_text()):
        where = f"{path.name}: {doc['kind']} {doc['metadata']['name']}"
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            assert crd_errors(doc, kserve_crds) == [], where
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on any error


def test_core_validation_is_strict():
    sa = docs("rollout-rbac.yaml")[0]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**sa, "automountToken": False}, KUBERNETES_VERSION, strict=True)


def test_role_grants_only_get_list_watch_patch_on_inferenceservices():
    roles = [d for d in docs("rollout-rbac.yaml") if d["kind"] in ("Role", "ClusterRole")]
    assert [r["kind"] for r in roles] == ["Role"]  # namespaced: one namespace only
    for rule in roles[0]["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch", "patch"}
        assert rule["resources"] == ["inferenceservices"] and rule["apiGroups"] == ["serving.kserve.io"]
        assert "resourceNames" not in rule or rule["resourceNames"]
    assert {v for r in roles[0]["rules"] for v in r["verbs"]} == {"get", "list", "watch", "patch"}


def test_the_binding_and_token_secret_name_what_the_pipeline_mounts():
    sa, role, binding, secret = docs("rollout-rbac.yaml")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}]
    assert secret["metadata"]["name"] == DEFAULT_SETTINGS.rollout_secret
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == sa["metadata"]["name"]
    assert "data" not in secret and "stringData" not in secret  # Kubernetes fills the token in


def test_runtime_image_and_name_match_the_code():
    runtime, = docs("servingruntime.yaml")
    assert runtime["spec"]["containers"][0]["image"] == TRITON_IMAGE
    isvc, = docs("inferenceservice.yaml")
    rendered = kserve.render_inference_service("llm", "kfp-llmops", "gs://YOUR-BUCKET/models/llm/1",
                                               annotations=isvc["metadata"]["annotations"])
    assert rendered == isvc
    assert isvc["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]


def test_the_hf_inference_service_is_what_the_code_renders():
    isvc, = docs("inferenceservice-hf.yaml")
    rendered = kserve.render_inference_service("llm", "kfp-llmops", "gs://YOUR-BUCKET/models/llm/1", serving_format="hf",
                                               annotations=isvc["metadata"]["annotations"])
    assert rendered == isvc  # and, like every manifest here, valid against KServe's CRD (test_manifest_is_valid)
    model = isvc["spec"]["predictor"]["model"]
    assert (model["modelFormat"]["name"], model["runtime"]) == ("huggingface", kserve.HF_RUNTIME)
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_the_adapter_manifests_are_what_the_code_renders():
    """serving_format adapter: the InferenceService (vLLM's LoRA arguments on KServe's Hugging Face runtime) and the
    LLMInferenceService with two adapter versions on one base; both valid against KServe's CRDs (above)."""
    isvc, = docs("inferenceservice-adapter.yaml")
    base = "Qwen/Qwen2.5-0.5B-Instruct"
    args = kserve.adapter_args("llm", base, "", 16)
    assert isvc == kserve.render_inference_service("llm", "kfp-llmops", "s3://YOUR-BUCKET/models/llm/1", serving_format="adapter",
                                                   args=args, annotations=isvc["metadata"]["annotations"])
    model = isvc["spec"]["predictor"]["model"]
    assert "--enable-lora" in model["args"] and f"--model_id={base}" in model["args"]
    assert model["env"][0]["valueFrom"]["secretKeyRef"]["name"] == DEFAULT_SETTINGS.hub_secret
    llmisvc, = docs("llminferenceservice-lora.yaml")
    assert llmisvc == kserve.render_llm_inference_service(
        "llm", "kfp-llmops", base, [("llm-v1", "s3://YOUR-BUCKET/models/llm/1"), ("llm-v2", "s3://YOUR-BUCKET/models/llm/2")],
        max_rank=16)


def test_trainer_role_may_only_create_and_watch_trainjobs():
    [role] = [d for d in docs("training.yaml") if d["kind"] in ("Role", "ClusterRole")]
    assert role["kind"] == "Role"
    assert role["rules"] == [{"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"],
                              "verbs": ["create", "get", "list", "watch"]}]


def test_training_volume_and_token_match_what_the_pipeline_mounts():
    pvc, sa, _, binding, secret = docs("training.yaml")
    assert pvc["metadata"]["name"] == DEFAULT_SETTINGS.shared_pvc and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert secret["metadata"]["name"] == DEFAULT_SETTINGS.trainer_secret
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == sa["metadata"]["name"]
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]


def test_staging_role_lets_the_rollout_account_create_and_update_inference_services_there_only():
    role, binding = docs("staging-rbac.yaml")
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "kfp-llmops-staging"
    assert role["rules"] == [{"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
                              "verbs": ["get", "list", "watch", "create", "patch"]}]  # no delete, nothing else
    rollout_sa = docs("rollout-rbac.yaml")[0]["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": rollout_sa["name"], "namespace": rollout_sa["namespace"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
