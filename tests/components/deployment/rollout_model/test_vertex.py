"""The vertex target against a recording stand-in of the Vertex AI REST API and of Cloud Monitoring's PromQL API:
the exact traffic splits of a promotion and of a rollback."""

from fake_vertex import PARENT, FakeVertex
from google.cloud.aiplatform_v1 import AcceleratorType
from recording_server import RecordingServer

from kfp_llmops.deployment import vertex
from kfp_llmops.components.deployment.rollout_model import core
from kfp_llmops.deployment.metrics import Prometheus

STABLE_MODEL = f"{PARENT}/models/42@1"
CANARY_MODEL = f"{PARENT}/models/42@2"


class FakeMonitoring:
    def __init__(self, canary_error_rate=0.0):
        self.canary_error_rate = canary_error_rate

    def __call__(self, req):
        query = req.query["query"]
        assert 'endpoint_id="7"' in query
        canary = 'deployed_model_id="100"' in query  # the fake's first new deployed model id
        if query.startswith("histogram_quantile"):
            value = 0.1
        elif 'response_code!~"2.."' in query:
            value = 200 * self.canary_error_rate if canary else 0.0
        else:
            value = 200.0
        return 200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]}}


def rollout(fake, monitoring):
    endpoint = fake.add_endpoint("7", deployed={"1": STABLE_MODEL}, split={"1": 100})
    cfg = core.RolloutConfig(window_s=60)
    with RecordingServer(fake) as api, RecordingServer(monitoring) as prom:
        settings = vertex.VertexSettings(endpoint=endpoint, model=CANARY_MODEL, api_endpoint=api.url)
        target = vertex.VertexTarget(settings, cfg, prometheus=Prometheus(prom.url), sleep=lambda s: None)
        result = core.run(target, cfg, log=lambda _: None)
    calls = [(r.method, r.path.rsplit("/", 1)[-1], r.body) for r in api.requests if r.method != "GET"]
    return result, calls, fake.endpoints[endpoint]


def split(canary, stable):
    return ("PATCH", "7", {"trafficSplit": {"100": canary, "1": stable}})  # the name is in the URL


DEPLOY = ("POST", "7:deployModel", {
    "deployedModel": {"model": CANARY_MODEL, "displayName": "42-v2", "dedicatedResources": {
        # enums go over REST as numbers
        "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": AcceleratorType.NVIDIA_L4.value, "acceleratorCount": 1},
        "minReplicaCount": 1, "maxReplicaCount": 2}},
    "trafficSplit": {"0": 0, "1": 100}})


def test_promotion_steps_the_split_and_undeploys_stable():
    result, calls, endpoint = rollout(FakeVertex(), FakeMonitoring())
    assert result.decision == "promoted"
    assert calls == [DEPLOY, split(5, 95), split(10, 90), split(25, 75), split(50, 50), split(100, 0),
                     ("POST", "7:undeployModel", {"deployedModelId": "1", "trafficSplit": {"100": 100}})]
    assert endpoint["trafficSplit"] == {"100": 100} and [m["id"] for m in endpoint["deployedModels"]] == ["100"]


def test_rollback_sends_everything_to_stable_and_undeploys_the_canary():
    result, calls, endpoint = rollout(FakeVertex(), FakeMonitoring(canary_error_rate=0.1))
    assert result.decision == "rolled_back"
    assert calls == [DEPLOY, split(5, 95), split(0, 100),
                     ("POST", "7:undeployModel", {"deployedModelId": "100", "trafficSplit": {"1": 100}})]
    assert endpoint["trafficSplit"] == {"1": 100} and [m["id"] for m in endpoint["deployedModels"]] == ["1"]


def test_exit_handler_restores_the_production_deployed_model():
    fake = FakeVertex()
    endpoint = fake.add_endpoint("7", deployed={"1": STABLE_MODEL, "100": CANARY_MODEL}, split={"1": 75, "100": 25})
    with RecordingServer(fake) as api:
        settings = vertex.VertexSettings(endpoint=endpoint, model=CANARY_MODEL, api_endpoint=api.url)
        client = vertex.VertexTarget(settings, core.RolloutConfig(), prometheus=Prometheus("http://unused")).client
        said = vertex.restore_stable(client, endpoint, STABLE_MODEL)
    assert said == f"endpoint {endpoint}: traffic restored to 1, undeployed ['100']"
    assert fake.endpoints[endpoint]["trafficSplit"] == {"1": 100}
    assert [m["id"] for m in fake.endpoints[endpoint]["deployedModels"]] == ["1"]
