"""monitor: production monitoring, meant to be scheduled (``kfp-llmops schedule --pipeline monitor``).

Reads the served traffic (KServe's payload logger CloudEvents), compares it with the training data (input drift,
output-length and refusal-rate drift) and the SLOs (error rate, p95 latency: Prometheus or the log), and on a breach
does what ``monitor_config.on_breach`` says: ``rollback`` (production back to previous, registry and serving) and/or
``retrain`` (a run of the committed spec, per ``retrain_config``).
"""

from kfp import dsl
from kfp.dsl import Dataset

from kfp_llmops.components.monitoring.monitor_model.component import monitor_model
from kfp_llmops.components.preflight.check_configs.component import check_configs
from kfp_llmops.pipelines.platform import registry_credentials, rollout_credentials

NAME = "monitor"


def build(target: str = "vertex"):
    @dsl.pipeline(name=NAME, description="Watch the production model: drift and SLOs; roll back or retrain on a breach.")
    def monitor(
        payload_log: str,
        reference_data: str,
        model_name: str = "llm",
        base_model: str = "",
        registry_uri: str = "",
        deploy_target: str = "local",
        monitor_config: dict = {},
        retrain_config: dict = {},
        namespace: str = "kfp-llmops",
        inference_service: str = "",
        prometheus_url: str = "",
        vertex_endpoint: str = "",
    ):
        checked = check_configs(monitor_config=monitor_config, retrain_config=retrain_config)
        # reimport: a payload log at the same URI grows between scheduled runs
        traffic = dsl.importer(artifact_uri=payload_log, artifact_class=Dataset, reimport=True).set_display_name("import-payload-log")
        reference = dsl.importer(artifact_uri=reference_data, artifact_class=Dataset, reimport=False).set_display_name("import-reference-data")
        watched = monitor_model(
            payload_log=traffic.output, reference_data=reference.output, model_name=model_name, base_model=base_model,
            registry_uri=registry_uri, target=deploy_target, monitor_config=monitor_config, retrain_config=retrain_config,
            namespace=namespace, inference_service=inference_service, prometheus_url=prometheus_url,
            vertex_endpoint=vertex_endpoint,
        ).after(checked)
        watched.set_caching_options(False)  # every scheduled run looks at the traffic anew
        registry_credentials(watched, target)
        rollout_credentials(watched, target)  # a rollback patches the InferenceService on Kubeflow

    return monitor
