"""The ``vertex`` rollout target: a Vertex AI Endpoint's traffic split, analysis from Cloud Monitoring (PromQL).

The candidate (a Vertex AI Model Registry version) is deployed to the endpoint beside the stable deployed model with
0 % traffic; each step updates the endpoint's ``traffic_split``; rollback sends all traffic to stable and undeploys the
candidate; promotion sends all traffic to the candidate and undeploys stable. A first rollout (an endpoint with no
deployed model) deploys the candidate with 100 %.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kfp_llmops.deployment.config import RolloutConfig
from kfp_llmops.deployment.stats import RevisionStats
from kfp_llmops.deployment.metrics import VERTEX_QUERIES, Prometheus, Queries
from kfp_llmops.errors import UserInputError


# Vertex AI serves a registered Model's one container; adapters on a shared base need the vLLM serving container's
# --enable-lora with adapter paths fixed when the Model is uploaded, and an endpoint's traffic split is between
# deployed models (each its own replicas with a whole copy of the base), so a per-version adapter saves nothing there.
VERTEX_ONNX_ONLY = ("the vertex target deploys the ONNX model (serving_format onnx), not serving_format {serving_format!r}: "
                    "a Vertex AI endpoint splits traffic between deployed models, each on replicas of its own with the "
                    "whole model, so neither a merged folder nor an adapter on a shared base is served there by this "
                    "target. Serve hf and adapter on the local or kserve target")


@dataclass(frozen=True)
class VertexSettings:
    endpoint: str  # projects/P/locations/L/endpoints/E
    model: str  # projects/P/locations/L/models/M@VERSION
    machine_type: str = "g2-standard-8"
    accelerator_type: str = "NVIDIA_L4"
    accelerator_count: int = 1
    min_replicas: int = 1
    max_replicas: int = 2
    api_endpoint: str | None = None

    @property
    def location(self) -> str:
        return self.endpoint.split("/")[3]

    @property
    def project(self) -> str:
        return self.endpoint.split("/")[1]


def cloud_monitoring_prometheus(project: str) -> Prometheus:
    """Cloud Monitoring's PromQL API with the application default credentials."""
    import google.auth
    import google.auth.transport.requests

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/monitoring.read"])

    def headers() -> dict:
        if not creds.valid:
            creds.refresh(google.auth.transport.requests.Request())
        return {"Authorization": f"Bearer {creds.token}"}

    return Prometheus(f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus", headers=headers)


class VertexTarget:
    def __init__(self, settings: VertexSettings, cfg: RolloutConfig, *, prometheus: Prometheus, client=None,
                 queries: Queries = VERTEX_QUERIES, sleep=time.sleep):
        from google.cloud import aiplatform_v1

        from kfp_llmops.vertex_api import gapic_client

        self.s, self.cfg, self.prom, self.queries, self.sleep = settings, cfg, prometheus, queries, sleep
        self.client = client or gapic_client(aiplatform_v1.EndpointServiceClient, settings.location, settings.api_endpoint)
        self.stable_id: str | None = None
        self.canary_id: str | None = None

    def _split(self, canary_percent: int) -> dict[str, int]:
        split = {self.canary_id: canary_percent}
        if self.stable_id:
            split[self.stable_id] = 100 - canary_percent
        return split

    def has_stable(self) -> bool:
        endpoint = self.client.get_endpoint(request={"name": self.s.endpoint})
        split = dict(endpoint.traffic_split)
        if split:
            self.stable_id = max(split, key=split.get)
        elif endpoint.deployed_models:
            self.stable_id = endpoint.deployed_models[0].id
        return self.stable_id is not None

    def start(self, percent: int) -> None:
        machine = {"machine_type": self.s.machine_type}
        if self.s.accelerator_count:
            machine.update(accelerator_type=self.s.accelerator_type, accelerator_count=self.s.accelerator_count)
        deployed = {
            "model": self.s.model,
            "display_name": self.s.model.rsplit("/", 1)[-1].replace("@", "-v"),
            "dedicated_resources": {
                "machine_spec": machine,
                "min_replica_count": self.s.min_replicas,
                "max_replica_count": self.s.max_replicas,
            },
        }
        # "0" is the model being deployed; stable keeps all traffic until the first step
        split = {"0": 100} if not self.stable_id else {"0": 0, self.stable_id: 100}
        op = self.client.deploy_model(request={"endpoint": self.s.endpoint, "deployed_model": deployed, "traffic_split": split})
        self.canary_id = op.result(timeout=self.cfg.progress_deadline_s).deployed_model.id
        if self.stable_id and percent:
            self.set_traffic(percent)

    def set_traffic(self, percent: int) -> None:
        self.client.update_endpoint(request={
            "endpoint": {"name": self.s.endpoint, "traffic_split": self._split(percent)},
            "update_mask": {"paths": ["traffic_split"]},
        })

    def wait_ready(self, timeout_s: float) -> None:
        endpoint = self.client.get_endpoint(request={"name": self.s.endpoint})
        if self.canary_id not in {m.id for m in endpoint.deployed_models}:
            raise UserInputError(f"deployed model {self.canary_id} is not on endpoint {self.s.endpoint}")

    def observe(self, percent: int) -> tuple[RevisionStats, RevisionStats | None]:
        self.sleep(self.cfg.window_s)
        endpoint_id = self.s.endpoint.rsplit("/", 1)[-1]

        def stats(rev):
            return self.prom.revision_stats(self.queries, revision=rev, namespace=endpoint_id, window_s=self.cfg.window_s,
                                            custom=self.cfg.analysis.custom)

        return stats(self.canary_id), stats(self.stable_id) if self.stable_id else None

    def _undeploy(self, deployed_id: str, keep: str) -> None:
        self.client.undeploy_model(request={"endpoint": self.s.endpoint, "deployed_model_id": deployed_id,
                                            "traffic_split": {keep: 100}}).result(timeout=self.cfg.progress_deadline_s)

    def rollback(self) -> None:
        if self.canary_id is None:
            return
        if self.stable_id:
            self.set_traffic(0)
            self._undeploy(self.canary_id, keep=self.stable_id)
        self.canary_id = None

    def promote(self) -> None:  # the schedule ends at 100 %: stable has no traffic left to move
        if self.stable_id:
            self._undeploy(self.stable_id, keep=self.canary_id)


def restore_stable(client, endpoint: str, stable_model: str) -> str:
    """For the exit handler: all traffic back to the deployed model of ``stable_model`` (the registry's production
    version), undeploying any other. Returns what it did."""
    ep = client.get_endpoint(request={"name": endpoint})
    stable = [m.id for m in ep.deployed_models if m.model == stable_model or f"{m.model}@{m.model_version_id}" == stable_model]
    others = [m.id for m in ep.deployed_models if m.id not in stable]
    if not stable or not others:
        return f"endpoint {endpoint}: nothing to restore (stable deployed: {bool(stable)}, others: {len(others)})"
    client.update_endpoint(request={"endpoint": {"name": endpoint, "traffic_split": {stable[0]: 100}},
                                    "update_mask": {"paths": ["traffic_split"]}})
    for other in others:
        client.undeploy_model(request={"endpoint": endpoint, "deployed_model_id": other,
                                       "traffic_split": {stable[0]: 100}}).result()
    return f"endpoint {endpoint}: traffic restored to {stable[0]}, undeployed {others}"


def deploy_to_endpoint(client, endpoint: str, model: str, *, deadline_s: float, machine_type: str = "g2-standard-8",
                       accelerator_type: str = "NVIDIA_L4", accelerator_count: int = 1) -> str:
    """Deploys ``model`` to the staging ``endpoint`` with all of its traffic, then undeploys what it replaced."""
    previous = [m.id for m in client.get_endpoint(request={"name": endpoint}).deployed_models]
    machine = {"machine_type": machine_type}
    if accelerator_count:
        machine.update(accelerator_type=accelerator_type, accelerator_count=accelerator_count)
    deployed = {"model": model, "display_name": model.rsplit("/", 1)[-1].replace("@", "-v") + "-staging",
                "dedicated_resources": {"machine_spec": machine, "min_replica_count": 1, "max_replica_count": 1}}
    op = client.deploy_model(request={"endpoint": endpoint, "deployed_model": deployed, "traffic_split": {"0": 100}})
    new_id = op.result(timeout=deadline_s).deployed_model.id
    for old in previous:
        client.undeploy_model(request={"endpoint": endpoint, "deployed_model_id": old,
                                       "traffic_split": {new_id: 100}}).result(timeout=deadline_s)
    return new_id
