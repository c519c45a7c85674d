"""KFP component: roll the exported model out to a target (``local`` smoke-tested server, or ``kserve``)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def deploy_model(
    onnx_model: Input[Model],
    manifest: Output[Artifact],
    smoke: Output[Metrics],
    target: str = "local",
    model_name: str = "llm",
    namespace: str = "kfp-llmops",
    storage_uri: str = "",
    smoke_prompt: str = "reverse: apple bird cake",
):
    """``local``: serve over Open Inference Protocol v2 and smoke-test with tritonclient. ``kserve``: render the InferenceService."""
    import json

    from kfp_llmops.components.deployment.deploy_model import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file
    from kfp_llmops.modeling import load_tokenizer
    from kfp_llmops.prompts import format_prompt

    with user_errors():
        cfg = core.DeployConfig(target=target, model_name=model_name, namespace=namespace,
                                storage_uri=storage_uri or onnx_model.uri)
        rendered = core.render_inference_service(cfg, annotations={"kfp-llmops/sha256": onnx_model.metadata.get("sha256", "")})
        with atomic_file(manifest.path) as tmp:
            tmp.write_text(json.dumps(rendered, indent=2) + "\n", encoding="utf-8")
        if cfg.target == "local":
            with core.local_server(cfg.model_name, onnx_model.path, timeout_s=cfg.startup_timeout_s) as url:
                result = core.smoke_test(url, cfg.model_name, load_tokenizer(onnx_model.path), format_prompt(smoke_prompt))
            print(f"smoke test over Open Inference Protocol v2 at {url}: {result}")
            smoke.log_metric("latency_ms", result["latency_ms"])
            smoke.log_metric("vocab_logits", result["logits_shape"][-1])
            smoke.log_metric("passed", 1)
    manifest.metadata.update({"target": target, "parents": {"onnx_model": onnx_model.uri}, "format": "kubernetes-json"})
