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


def test_concurrent_registrations_converge_on_one_model_and_one_version_per_digest(vertex):
    from concurrent.futures import ThreadPoolExecutor

    fake, server, registry = vertex
    uri = registry.uri + f"?api_endpoint={server.url}"

    def register(i):  # a registry client per worker, as separate pipeline steps would have
        return open_registry(uri).register("llm", f"gs://b/run{i}/onnx", "ab"[i % 2] * 64, {}).version

    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(register, range(6)))
    [(model, versions)] = fake.models.items()  # a second Model made by the race was deleted
    by_digest = {v["labels"]["kfp-llmops-sha256"]: v["versionId"] for v in versions}
    assert len(versions) == 2 and set(got) == set(by_digest.values())
    assert {got[i] for i in range(0, 6, 2)} == {by_digest["a" * 40]} and {got[i] for i in range(1, 6, 2)} == {by_digest["b" * 40]}


def test_concurrent_promotions_under_the_etag_lock_keep_one_history(vertex):
    from concurrent.futures import ThreadPoolExecutor

    from kfp_llmops.registry import PREVIOUS, promote

    fake, server, registry = vertex
    for d in "xyz":
        registry.register("llm", f"gs://b/{d}", d * 64, {})
    uri = registry.uri + f"?api_endpoint={server.url}"
    with ThreadPoolExecutor(3) as pool:
        replaced = list(pool.map(lambda v: promote(open_registry(uri), "llm", v), ["1", "2", "3"]))
    final = registry.aliases("llm")[PRODUCTION]
    assert replaced.count(None) == 1 and sorted(r for r in replaced if r) == sorted({"1", "2", "3"} - {final})
    assert registry.aliases("llm")[PREVIOUS] != final
    assert not any("kfp-llmops-lock" in v["labels"] for vs in fake.models.values() for v in vs)  # released
    assert [r for r in server.requests if r.method == "PATCH" and r.body.get("etag")]  # taken by compare-and-set


def test_download_reads_the_gcs_mount(vertex, tmp_path, monkeypatch):
    from kfp_llmops.registry import ModelVersion
    from kfp_llmops.registry import vertex_backend

    fake, server, registry = vertex
    mounted = tmp_path / "gcs" / "b" / "run1" / "adapter"
    mounted.mkdir(parents=True)
    (mounted / "adapter_config.json").write_text("{}")
    real_path = vertex_backend.Path
    monkeypatch.setattr(vertex_backend, "Path", lambda p, *rest: real_path(str(tmp_path / "gcs") if p == "/gcs" else p, *rest))
    got = registry.download(ModelVersion("llm-adapter", "1", "gs://b/run1/adapter", "d"), tmp_path / "out")
    assert (got / "adapter_config.json").read_text() == "{}"
    with pytest.raises(ConfigError, match="is not gs://"):
        registry.download(ModelVersion("llm-adapter", "1", "s3://x/y", "d"), tmp_path / "out2")


def test_at_most_64_labels_reach_vertex_ai_and_the_identity_and_new_tags_are_kept(vertex):
    """A model version takes at most 64 labels: a run's 100 evaluation figures are cut (they are in lineage.json),
    never the digest, the tags set later (an approval) or the other lineage tags."""
    fake, server, registry = vertex
    tags = {"base_model": "org/base", "run_id": "r1", **{f"eval.metric_{i:03d}": i / 100 for i in range(100)}}
    version = registry.register("llm", "gs://b/run1/onnx", "a" * 64, tags)
    stored = fake.models[next(iter(fake.models))][0]["labels"]
    assert len(stored) == 64 and stored["kfp-llmops-sha256"] == "a" * 40 and stored["run_id"] == "r1"
    assert "eval-metric_000" in stored and "eval-metric_099" not in stored  # the first figures stay
    registry.set_tags("llm", version.version, {"approval_decision": "approved", "approval_by": "ana"})
    stored = fake.models[next(iter(fake.models))][0]["labels"]
    assert len(stored) == 64 and stored["approval_decision"] == "approved" and stored["approval_by"] == "ana"
    assert registry.find("llm", "a" * 64).version == version.version  # still found by its digest
