"""KFP component: served traffic against the training data and the SLOs; rollback and/or retraining on a breach."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def monitor_model(
    payload_log: Input[Dataset],
    reference_data: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
    model_name: str = "llm",
    base_model: str = "",
    registry_uri: str = "",
    target: str = "local",
    monitor_config: dict = {},
    retrain_config: dict = {},
    namespace: str = "kfp-llmops",
    inference_service: str = "",
    prometheus_url: str = "",
    vertex_endpoint: str = "",
) -> bool:
    """Reads ``payload_log`` (KServe's payload logger CloudEvents, JSONL: a file or a folder), measures input drift,
    output-length and refusal-rate drift against ``reference_data`` (the training data), and the error-rate and p95
    latency SLOs (from Prometheus for the production service when ``prometheus_url`` is given, else from the log).
    On a breach, ``monitor_config.on_breach`` decides: ``rollback`` moves ``production`` back to ``previous`` (the
    registry, then the ``target``'s serving), ``retrain`` starts a run as ``retrain_config`` says. Returns whether
    the model is healthy (True also when the log is too small to decide). ``base_model`` (its tokenizer) measures
    the training prompts in tokens when the traffic is protocol v2 token ids (``onnx``)."""
    from kfp_llmops.components.monitoring.monitor_model import core
    from kfp_llmops.components.monitoring.monitor_model.service import monitor_once
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file, sha256_path

    with user_errors():
        result, version, done = monitor_once(
            payload_log.path, reference_data.path, monitor_config=monitor_config, retrain_config=retrain_config,
            model_name=model_name, base_model=base_model, registry_uri=registry_uri, target=target, namespace=namespace,
            inference_service=inference_service, prometheus_url=prometheus_url, vertex_endpoint=vertex_endpoint)
    with atomic_file(report.path) as tmp:
        tmp.write_text(core.report_html(result, model_name=model_name, version=version, actions=done), encoding="utf-8")
    metrics.log_metric("requests", result.requests)
    metrics.log_metric("breached", int(result.breached))
    for name, value in result.drift.items():
        metrics.log_metric(name, value)
    report.metadata.update({"model": model_name, "version": version, "breached": result.breached,
                            "conclusive": result.conclusive, "actions": done, "summary": result.summary(),
                            "payload_log_sha256": sha256_path(payload_log.path),
                            "parents": {"payload_log": payload_log.uri, "reference_data": reference_data.uri}})
    return not result.breached
