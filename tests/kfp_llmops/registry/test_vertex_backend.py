"""The Vertex AI Model Registry backend against a recording stand-in of the Vertex REST API."""

import pytest
from fake_vertex import PARENT, FakeVertex
from recording_server import RecordingServer

from kfp_llmops.errors import ConfigError
from kfp_llmops.registry import PRODUCTION, open_registry


@pytest.fixture
def vertex():
    fake = FakeVertex()
    with RecordingServer(fake) as server:
        yield fake, server, open_registry(f"vertex://{PARENT}?api_endpoint={server.url}")


def test_registration_is_idempotent_and_versions_one_model(vertex):
    fake, server, registry = vertex
    first = registry.register("llm", "gs://b/run1/onnx", "a" * 64, {"base_model": "Org/Base", "eval.em": 0.57})
    again = registry.register("llm", "gs://b/run2/onnx", "a" * 64, {})
    second = registry.register("llm", "gs://b/run3/onnx", "b" * 64, {})
    assert (first.version, first.created, again.version, again.created, second.version) == ("1", True, "1", False, "2")
    assert len(fake.models) == 1 and first.resource == f"{next(iter(fake.models))}@1"
    uploads = [r.body for r in server.calls("POST") if r.path.endswith("models:upload")]
    assert len(uploads) == 2
    assert "parentModel" not in uploads[0] and uploads[1]["parentModel"] == next(iter(fake.models))
    model = uploads[0]["model"]
    assert model["artifactUri"] == "gs://b/run1/onnx" and model["displayName"] == "llm"
    assert model["labels"] == {"base_model": "org-base", "eval-em": "0-57", "kfp-llmops-sha256": "a" * 40}
    assert model["containerSpec"]["imageUri"].startswith("nvcr.io/nvidia/tritonserver:")


def test_production_alias_moves_between_versions(vertex):
    fake, server, registry = vertex
    for d in "ab":
        registry.register("llm", f"gs://b/{d}", d * 64, {})
    assert registry.get_alias("llm", PRODUCTION) is None
    registry.set_alias("llm", PRODUCTION, "1")
    registry.set_alias("llm", PRODUCTION, "2")
    assert registry.aliases("llm") == {PRODUCTION: "2"}
    merges = [(r.path.rsplit("/", 1)[-1], r.body["versionAliases"]) for r in server.calls("POST") if "mergeVersionAliases" in r.path]
    model_id = next(iter(fake.models)).rsplit("/", 1)[-1]
    assert merges == [(f"{model_id}@1:mergeVersionAliases", ["production"]),
                      (f"{model_id}@1:mergeVersionAliases", ["-production"]),
                      (f"{model_id}@2:mergeVersionAliases", ["production"])]
    registry.delete_alias("llm", PRODUCTION)
    assert registry.aliases("llm") == {}


def test_bad_vertex_uri_is_named():
    with pytest.raises(ConfigError, match="expected vertex://projects/PROJECT/locations/LOCATION"):
        open_registry("vertex://my-project")
