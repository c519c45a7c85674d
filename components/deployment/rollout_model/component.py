"""KFP component: canary rollout of a registered model with automated analysis, rollback and promotion."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def rollout_model(
    onnx_model: Input[Model],
    registered: Input[Artifact],
    eval_dataset: Input[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
    manifest: Output[Artifact],
    report_html: Output[HTML],
    target: str = "local",
    rollout_config: dict = {},
    serving_format: str = "",
    namespace: str = "kfp-llmops",
    inference_service: str = "",
    storage_uri: str = "",
    prometheus_url: str = "http://prometheus-operated.monitoring:9090",
    vertex_endpoint: str = "",
):
    """Steps canary traffic through ``rollout_config.schedule``, analyses canary vs stable after each step, and
    either promotes (the registry alias ``production`` moves) or rolls back and fails with the reasons.

    ``local``: two KServe ModelServers on localhost (stable = the registry's production version), replayed requests
    from ``eval_dataset``. ``kserve``: patches ``canaryTrafficPercent`` on the existing InferenceService
    ``inference_service`` (default: the registered model name) and reads Prometheus. ``vertex``: the traffic split of
    ``vertex_endpoint``, read from Cloud Monitoring. ``serving_format`` (overrides ``rollout_config``'s): ``onnx``, a
    Triton repository over protocol v2; ``hf``, a merged Hugging Face folder over OpenAI-compatible chat (KServe's
    Hugging Face runtime; locally ``kfp_llmops.serving.hf_server``); ``adapter``, a LoRA adapter (package_adapter)
    on its base (as trained: the folder, or the hub id at its commit): locally one server with the base once and both
    versions as adapters, the split by adapter name; on KServe each revision loads the base by hub id with vLLM's LoRA
    arguments. ``rollout_config.shadow`` adds a shadow stage before the canary: the candidate answers copies of
    stable's requests, compared on the same requests."""
    import functools
    import json
    import signal

    from kfp_llmops.components.deployment.rollout_model import core, targets
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file
    from kfp_llmops.registry import open_registry

    def terminated(signum, frame):  # KFP stops a pod with SIGTERM: unwind, which rolls the canary back
        raise SystemExit(f"terminated by signal {signum}")

    previous_handler = signal.signal(signal.SIGTERM, terminated)
    try:
        with user_errors():
            cfg = core.RolloutConfig.from_dict({**rollout_config, **({"serving_format": serving_format} if serving_format else {})})
            core.check_target(target)
            meta = dict(registered.metadata)
            version = meta["version"]  # kfp.local hands integers back as floats
            name, version = meta["registered_model"], str(int(version) if isinstance(version, float) else version)
            registry = open_registry(meta["registry_uri"])
            open_target = functools.partial(
                targets.build, target, cfg, onnx_model=onnx_model, eval_dataset=eval_dataset, model_name=name,
                version=version, resource=meta.get("resource", ""), namespace=namespace,
                inference_service=inference_service or name, storage_uri=storage_uri or onnx_model.uri,
                prometheus_url=prometheus_url, vertex_endpoint=vertex_endpoint, work_dir=report.path + ".work", registry=registry)
            result, stable, rendered = core.rollout_version(registry, name, version, cfg, open_target)
            text = core.report_markdown(result, target=target, model_name=name, version=version,
                                        stable=stable.version if stable else None)
            print(text)
            core.raise_if_rolled_back(result, name, version)
    finally:  # the handler is the step's only while it rolls out
        signal.signal(signal.SIGTERM, previous_handler)
    with atomic_file(report.path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    with atomic_file(report_html.path) as tmp:
        tmp.write_text(core.report_html(result, target=target, model_name=name, version=version,
                                        stable=stable.version if stable else None), encoding="utf-8")
    with atomic_file(manifest.path) as tmp:
        tmp.write_text(json.dumps({"result": result.to_dict(), "manifest": rendered}, indent=2) + "\n", encoding="utf-8")
    metrics.log_metric("promoted", int(result.decision == "promoted"))
    metrics.log_metric("steps", len(result.steps))
    info = {"target": target, "decision": result.decision, "registered_model": name, "version": version,
            "stable_version": stable.version if stable else "", "parents": {"onnx_model": onnx_model.uri, "registered": registered.uri}}
    for artifact in (report, manifest, report_html):
        artifact.metadata.update(info)
