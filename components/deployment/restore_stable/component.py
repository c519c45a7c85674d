"""KFP exit handler: restores the stable revision if the run failed or was terminated mid-rollout."""

from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def restore_stable(
    status: PipelineTaskFinalStatus,
    target: str = "local",
    model_name: str = "llm",
    registry_uri: str = "",
    namespace: str = "kfp-llmops",
    inference_service: str = "",
    vertex_endpoint: str = "",
):
    """Runs after the pipeline's tasks whatever their outcome (``dsl.ExitHandler``); acts only when they failed."""
    from kfp_llmops.components.deployment.restore_stable import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.registry import open_registry

    print(f"pipeline tasks ended {status.state}" + (f": {status.error_message}" if status.error_message else ""))
    if status.state == core.SUCCEEDED:
        return
    with user_errors():
        kserve_api = vertex_client = None
        if target == "kserve":
            from kfp_llmops.deployment.kserve import kubernetes_api

            kserve_api = kubernetes_api()
        elif target == "vertex" and vertex_endpoint:
            from google.cloud import aiplatform_v1

            from kfp_llmops.vertex_api import gapic_client

            vertex_client = gapic_client(aiplatform_v1.EndpointServiceClient, vertex_endpoint.split("/")[3])
        for line in core.restore(status.state, target, open_registry(registry_uri), model_name, kserve_api=kserve_api,
                                 namespace=namespace, inference_service=inference_service,
                                 vertex_client=vertex_client, vertex_endpoint=vertex_endpoint):
            print(line)
