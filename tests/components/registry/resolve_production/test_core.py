"""resolve_production on a real MLflow store: the production adapter comes back byte for byte, or a clear error."""

import json

import pytest

from kfp_llmops.components.registry.resolve_production import core
from kfp_llmops.errors import UserInputError
from kfp_llmops.handoff import read_production
from kfp_llmops.lineage import sha256_path
from kfp_llmops.registry import PRODUCTION, open_registry


def register_pair(registry, tmp_path, text: str, base: str = "Org/Base-7B") -> str:
    """What register_model does: the compiled model tagged with its adapter's digest, and the adapter."""
    adapter = tmp_path / f"adapter-{text}"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_text(text)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    digest = sha256_path(adapter)
    model = registry.register("llm", str(adapter), f"{text}" * 64, {"adapter_sha256": digest, "base_model": base})
    registry.register("llm-adapter", str(adapter), digest, {"compiled_model_version": model.version})
    return model.version


@pytest.fixture
def registry(tmp_path):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}")


def test_no_production_yet_is_not_an_error(registry, tmp_path):
    assert core.resolve(registry, "llm", tmp_path / "out") is None
    assert core.write_info(None, tmp_path / "out") == {"found": False}
    assert read_production(tmp_path / "out") == {"found": False}


def test_production_adapter_is_downloaded_and_checked(registry, tmp_path):
    register_pair(registry, tmp_path, "a")
    second = register_pair(registry, tmp_path, "b")
    registry.set_alias("llm", PRODUCTION, second)
    found = core.resolve(registry, "llm", tmp_path / "out", default_base_model="unused")
    assert (found.version, found.adapter_version, found.base_model) == ("2", "2", "Org/Base-7B")
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").read_text() == "b"
    core.write_info(found, tmp_path / "out")
    info = read_production(tmp_path / "out")
    assert info["found"] and info["adapter_dir"] == str(tmp_path / "out" / "adapter")


def test_production_without_its_adapter_is_named(registry, tmp_path):
    registry.register("llm", "/models/c", "c" * 64, {"adapter_sha256": "d" * 64})
    registry.set_alias("llm", PRODUCTION, "1")
    with pytest.raises(UserInputError, match=r"names adapter sha256 dddddddddddd\.\.\., but llm-adapter in sqlite"):
        core.resolve(registry, "llm", tmp_path / "out")
    registry.register("other", "/models/e", "e" * 64, {})
    registry.set_alias("other", PRODUCTION, "1")
    with pytest.raises(UserInputError, match="has no adapter_sha256 tag"):
        core.resolve(registry, "other", tmp_path / "out2")


def test_a_changed_adapter_is_refused(registry, tmp_path, monkeypatch):
    registry.set_alias("llm", PRODUCTION, register_pair(registry, tmp_path, "a"))
    real = registry.download

    def tampered(version, dest):
        out = real(version, dest)
        (out / "adapter_model.safetensors").write_text("evil")
        return out

    monkeypatch.setattr(registry, "download", tampered)
    with pytest.raises(UserInputError, match="refusing to evaluate against it"):
        core.resolve(registry, "llm", tmp_path / "out")
