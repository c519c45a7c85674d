"""The MLflow backend on a real local SQLite store: idempotent registration and the production alias."""

import pytest

from kfp_llmops.errors import ConfigError
from kfp_llmops.registry import CANARY, PRODUCTION, default_uri, open_registry
from kfp_llmops.registry.mlflow_backend import MlflowRegistry


@pytest.fixture
def registry(tmp_path):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}")


def test_same_digest_registers_one_version(registry, tmp_path):
    first = registry.register("llm", str(tmp_path / "run1"), "a" * 64, {"base_model": "org/base", "eval.em": 0.57})
    again = registry.register("llm", str(tmp_path / "run2"), "a" * 64, {"base_model": "org/base"})
    other = registry.register("llm", str(tmp_path / "run3"), "b" * 64, {})
    assert isinstance(registry, MlflowRegistry)
    assert (first.version, first.created) == ("1", True)
    assert (again.version, again.created, again.source) == ("1", False, str(tmp_path / "run1"))
    assert (other.version, other.created) == ("2", True)
    assert first.tags["eval.em"] == "0.57" and first.tags["kfp_llmops.sha256"] == "a" * 64


def test_production_alias_moves_and_canary_is_removed(registry):
    for digest in ("a", "b"):
        registry.register("llm", f"/models/{digest}", digest * 64, {})
    assert registry.get_alias("llm", PRODUCTION) is None
    registry.set_alias("llm", PRODUCTION, "1")
    registry.set_alias("llm", CANARY, "2")
    assert registry.aliases("llm") == {PRODUCTION: "1", CANARY: "2"}
    registry.set_alias("llm", PRODUCTION, "2")
    registry.delete_alias("llm", CANARY)
    registry.delete_alias("llm", CANARY)  # deleting a missing alias is not an error
    assert registry.aliases("llm") == {PRODUCTION: "2"}
    assert registry.get_alias("llm", PRODUCTION).source == "/models/b"
    assert registry.aliases("unknown") == {}


def test_default_registry_lives_under_kfp_llmops_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KFP_LLMOPS_HOME", str(tmp_path / "home"))
    assert default_uri() == f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    assert open_registry("").uri == default_uri()


def test_an_empty_registry_uri_in_a_pod_is_refused(monkeypatch):
    monkeypatch.delenv("KFP_LLMOPS_HOME", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(ConfigError, match="registry_uri is empty in a Kubernetes pod, where a local registry would vanish"):
        open_registry("")


def test_unknown_registry_uri_is_named():
    with pytest.raises(ConfigError, match=r"registry_uri 's3://bucket/x' is not supported"):
        open_registry("s3://bucket/x")


def test_promotion_keeps_previous_and_rollback_swaps_back(registry, tmp_path, capsys):
    from kfp_llmops.cli import main
    from kfp_llmops.registry import PREVIOUS, promote

    for d in "abc":
        registry.register("llm", f"/m/{d}", d * 64, {})
    assert promote(registry, "llm", "1") is None
    assert promote(registry, "llm", "2") == "1"
    assert promote(registry, "llm", "2") is None  # already production: nothing moves
    assert registry.aliases("llm") == {PRODUCTION: "2", PREVIOUS: "1"}
    assert main(["registry", "rollback", "--model", "llm", "--registry-uri", registry.uri]) == 0
    assert registry.aliases("llm") == {PRODUCTION: "1", PREVIOUS: "2"}
    assert "production moved back from version 2 to version 1" in capsys.readouterr().out
    assert main(["registry", "rollback", "--model", "other", "--registry-uri", registry.uri]) == 2
    assert "other: nothing to roll back to (production: None, previous: None)" in capsys.readouterr().err
