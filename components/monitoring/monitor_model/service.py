"""One monitoring pass, as the ``monitor_model`` step and ``kfp-llmops monitor`` run it: read the log, check, act."""

from __future__ import annotations

from typing import Callable


def monitor_once(payload_log: str, reference_data: str, *, monitor_config: dict, retrain_config: dict,
                 model_name: str, base_model: str = "", registry_uri: str = "", target: str = "local",
                 namespace: str = "kfp-llmops", inference_service: str = "", prometheus_url: str = "",
                 vertex_endpoint: str = "", log: Callable[[str], None] = print):
    """Returns ``(result, production version, actions done)``."""
    from kfp_llmops.components.monitoring.monitor_model import actions, core
    from kfp_llmops.errors import ConfigError
    from kfp_llmops.registry import PRODUCTION, open_registry

    if target not in ("local", "kserve", "vertex"):
        raise ConfigError(f"monitor target must be local, kserve or vertex, got {target!r}")
    cfg = core.MonitorConfig.from_dict(dict(monitor_config))
    retrain = actions.RetrainConfig.from_dict(dict(retrain_config)) if "retrain" in cfg.on_breach else None
    registry = open_registry(registry_uri)
    production = registry.get_alias(model_name, PRODUCTION)
    version = production.version if production else "none"
    exchanges = core.read_payload_log(payload_log)
    slo = None
    if prometheus_url and production is not None:
        slo = core.prometheus_slo(prometheus_url, target, cfg, namespace=namespace,
                                  inference_service=inference_service or model_name, vertex_endpoint=vertex_endpoint)
    tokenizer = None
    if base_model:
        from kfp_llmops.modeling import load_tokenizer

        tokenizer = load_tokenizer(base_model)
    result = core.monitor(exchanges, core.reference_pairs(reference_data), cfg, slo_stats=slo, tokenizer=tokenizer)
    log(f"{model_name} version {version}: {result.summary()}")
    for check in result.checks:
        log(f"  {check.line()}")
    done = []
    if result.breached and "rollback" in cfg.on_breach:
        kwargs = {}
        if target == "kserve":
            from kfp_llmops.deployment.kserve import kubernetes_api

            kwargs = {"kserve_api": kubernetes_api(), "namespace": namespace, "inference_service": inference_service}
        elif target == "vertex":
            from google.cloud import aiplatform_v1

            from kfp_llmops.vertex_api import gapic_client

            kwargs = {"vertex_endpoint": vertex_endpoint,
                      "vertex_client": gapic_client(aiplatform_v1.EndpointServiceClient, vertex_endpoint.split("/")[3])}
        done.append(actions.rollback_production(registry, model_name, target, **kwargs))
    if result.breached and retrain is not None:
        done.append("retraining: " + actions.start_retraining(retrain))
    for line in done:
        log(line)
    return result, version, done
