"""What monitoring does on a breach: move production back to the previous version, and start a retraining run.

``rollback``: the registry's ``production`` alias back to ``previous`` (:func:`kfp_llmops.registry.rollback`), and the
serving target made to follow: ``kserve`` patches the InferenceService to the previous version's files (a new
revision taking all traffic); ``vertex`` deploys the previous Model Registry version to the endpoint with all traffic
and undeploys the rest; ``local`` has no long-running server, so the registry move is the rollback.
``retrain``: a run of the committed compiled pipeline (``pipelines/compiled/<backend>/<pipeline>.yaml``) on Kubeflow
Pipelines (``kfp.Client``) or Vertex AI (a ``PipelineJob`` built offline by the SDK, created through the GAPIC
client), with ``RetrainConfig.arguments``. Never imports kfp at module level.
"""

from __future__ import annotations

from kfp_llmops.configs import RetrainConfig
from kfp_llmops.errors import ConfigError, UserInputError


def rollback_production(registry, model_name: str, target: str, *, kserve_api=None, namespace: str = "",
                        inference_service: str = "", vertex_client=None, vertex_endpoint: str = "") -> str:
    """Production back to previous in the registry, then on the serving target; returns what was done."""
    from kfp_llmops.registry import PRODUCTION, rollback

    was, now = rollback(registry, model_name)
    done = f"registry: {model_name} production {was} -> {now}"
    version = registry.get_alias(model_name, PRODUCTION)
    if target == "kserve":
        from kfp_llmops.deployment.kserve import GROUP, PLURAL, VERSION

        name = inference_service or model_name
        patch = {"spec": {"predictor": {"canaryTrafficPercent": None, "model": {"storageUri": version.source}}}}
        kserve_api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        done += f"; InferenceService {namespace}/{name} serves {version.source}"
    elif target == "vertex":
        from kfp_llmops.deployment.vertex import deploy_to_endpoint

        if not version.resource:
            raise UserInputError(f"{model_name} version {now} has no Vertex AI Model Registry resource to deploy")
        deployed = deploy_to_endpoint(vertex_client, vertex_endpoint, version.resource, deadline_s=1800)
        done += f"; endpoint {vertex_endpoint} serves {version.resource} (deployed model {deployed})"
    else:
        done += " (the local target has no running server to move)"
    return done


def start_retraining(cfg: RetrainConfig, *, kfp_client=None, vertex_client=None) -> str:
    """Starts a run of the committed spec; returns its id or resource name."""
    from kfp_llmops.specs import spec_path

    spec = spec_path(cfg.backend, cfg.pipeline)
    if not spec.is_file():
        raise ConfigError(f"no committed spec {spec} for pipeline {cfg.pipeline!r}: run `kfp-llmops compile`")
    if cfg.backend == "kfp":
        import kfp

        client = kfp_client or kfp.Client(host=cfg.host or None)
        run = client.create_run_from_pipeline_package(str(spec), arguments=dict(cfg.arguments),
                                                      experiment_name=cfg.experiment, run_name=f"retrain-{cfg.pipeline}")
        return f"Kubeflow run {run.run_id}"
    import json

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform_v1 import PipelineServiceClient
    from google.cloud.aiplatform_v1.types import PipelineJob

    from kfp_llmops.vertex_api import gapic_client

    job = aiplatform.PipelineJob(display_name=f"retrain-{cfg.pipeline}", template_path=str(spec),
                                 pipeline_root=cfg.pipeline_root, parameter_values=dict(cfg.arguments),
                                 project=cfg.project, location=cfg.location, enable_caching=False,
                                 credentials=AnonymousCredentials())  # built offline; created below
    client = vertex_client or gapic_client(PipelineServiceClient, cfg.location, cfg.api_endpoint or None)
    created = client.create_pipeline_job(parent=f"projects/{cfg.project}/locations/{cfg.location}",
                                         pipeline_job=PipelineJob.from_json(json.dumps(job.to_dict())))
    return f"Vertex AI pipeline job {created.name}"
