"""serving_format adapter on the local target: one server holds the base once, with the production adapter and the
candidate adapter under their own names; the canary splits the traffic by adapter name (the request's ``model``), and
the analysis, rollback and shadow stage are the ones every format uses."""

import functools
from types import SimpleNamespace

import pytest
from faults import server_args

from kfp_llmops.artifacts import LoraAdapterMetadata
from kfp_llmops.components.compilation.package_adapter.core import package
from kfp_llmops.components.deployment.rollout_model import core, targets
from kfp_llmops.components.deployment.rollout_model.local import LocalTarget
from kfp_llmops.deployment.requests import replay_messages
from kfp_llmops.errors import ConfigError
from kfp_llmops.lineage import sha256_path
from kfp_llmops.modeling import resolved_revision
from kfp_llmops.registry import PREVIOUS, PRODUCTION, open_registry

CFG = {"serving_format": "adapter", "schedule": [50, 100], "requests_per_step": 12,
       "analysis": {"min_requests": 5, "latency_slack_ms": 1000}}  # faults and routing are tested here, not speed


@pytest.fixture(scope="module")
def packaged(base_model, adapter_versions, tmp_path_factory):
    """v1 and v2 as package_adapter writes them, with their typed metadata."""
    revision = resolved_revision(base_model)
    out = {}
    for name, folder in adapter_versions.items():
        dest = tmp_path_factory.mktemp(f"packaged-{name}")
        info = package(folder, dest, base_model=base_model, base_model_revision=revision)
        meta = LoraAdapterMetadata(base_model=base_model, base_model_revision=revision, rank=info["rank"],
                                   size_bytes=info["size_bytes"], prompt_format=info["prompt_format"]).to_metadata()
        out[name] = SimpleNamespace(path=str(dest), uri=str(dest), metadata={**meta, "sha256": sha256_path(dest)})
    return out


def registry_with_production(path, packaged, base_tags: dict) -> object:
    registry = open_registry(f"sqlite:///{path / 'registry.db'}")
    registry.register("llm", packaged["v1"].path, packaged["v1"].metadata["sha256"], base_tags)
    registry.register("llm", packaged["v2"].path, packaged["v2"].metadata["sha256"], base_tags)
    registry.set_alias("llm", PRODUCTION, "1")
    return registry


def open_target(cfg, candidate, demo_assets, registry, work_dir):
    return functools.partial(targets.build, "local", cfg, onnx_model=candidate,
                             eval_dataset=SimpleNamespace(path=str(demo_assets / "eval.jsonl")), model_name="llm",
                             version="2", resource="", namespace="", inference_service="", storage_uri="",
                             prometheus_url="", vertex_endpoint="", work_dir=str(work_dir), registry=registry)


def test_a_canary_between_two_adapters_on_one_base_is_promoted(packaged, demo_assets, tmp_path):
    meta = packaged["v2"].metadata
    registry = registry_with_production(tmp_path, packaged, {"base_model": meta["base_model"],
                                                             "base_model_revision": meta["base_model_revision"]})
    cfg = core.RolloutConfig.from_dict({**CFG, "shadow": {"requests": 4, "max_disagreement": 1.0, "latency_slack_ms": 1000}})
    lines = []
    result, stable, rendered = core.rollout_version(registry, "llm", "2", cfg,
                                                    open_target(cfg, packaged["v2"], demo_assets, registry, tmp_path / "work"),
                                                    log=lines.append)
    assert result.decision == "promoted", "\n".join(lines)
    assert (stable.version, rendered["adapters"]) == ("1", {"stable": "llm-v1", "candidate": "llm-v2"})
    assert rendered["base_model"] == meta["base_model"]
    # one server process: the base loaded once, both versions in it (no per-revision servers)
    assert sorted(p.name for p in (tmp_path / "work").glob("*.log")) == ["adapter-server.log"]
    shadow, half, full = result.steps
    assert (shadow.stage, shadow.canary["requests"], shadow.stable["requests"]) == ("shadow", 4, 4)
    assert shadow.agreement < 1.0  # v2 answers otherwise: the comparison reached each adapter by its name
    assert half.canary["requests"] >= 5 and half.stable["requests"] >= 5  # the split by adapter name, per name metrics
    assert full.stable is None or full.stable["requests"] == 0
    assert registry.aliases("llm") == {PRODUCTION: "2", PREVIOUS: "1"}


def test_a_failing_candidate_adapter_is_rolled_back_and_stable_keeps_answering(packaged, base_model, demo_assets, tmp_path,
                                                                               monkeypatch):
    registry = registry_with_production(tmp_path, packaged, {})
    cfg = core.RolloutConfig.from_dict(CFG)
    requests = replay_messages(str(demo_assets / "eval.jsonl"), limit=8)
    lines = []
    with LocalTarget("llm", packaged["v2"].path, packaged["v1"].path, requests, cfg, serving_format="adapter",
                     base_model=base_model, names={"stable": "llm-v1", "candidate": "llm-v2"},
                     server_args={"candidate": server_args(monkeypatch, fail_every=3, only="llm-v2")},
                     log_dir=tmp_path) as target:
        result = core.execute(target, cfg, registry, "llm", "2", log=lines.append)
    assert result.decision == "rolled_back", "\n".join(lines)
    assert [s.percent for s in result.steps] == [50]
    assert target.failed["stable"] == 0 and target.failed["candidate"] > 0  # the faults hit the candidate's name only
    assert registry.get_alias("llm", PRODUCTION).version == "1"


def test_adapters_on_different_bases_are_not_canaried_against_each_other(packaged, demo_assets, tmp_path):
    registry = registry_with_production(tmp_path, packaged, {"base_model": "org/older-base", "base_model_revision": "a" * 40})
    cfg = core.RolloutConfig.from_dict(CFG)
    with pytest.raises(ConfigError, match=r"version 1 of llm is an adapter on org/older-base@a{40}, the candidate one "
                                          r"on .*: a canary between adapters runs both on one base"):
        core.rollout_version(registry, "llm", "2", cfg, open_target(cfg, packaged["v2"], demo_assets, registry, tmp_path))
    assert registry.get_alias("llm", PRODUCTION).version == "1"


def test_a_merged_production_version_is_not_canaried_against_an_adapter(packaged, base_model, demo_assets, tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.register("llm", base_model, "f" * 64, {})  # a merged folder (config.json, no adapter_config.json)
    registry.register("llm", packaged["v2"].path, packaged["v2"].metadata["sha256"], {})
    registry.set_alias("llm", PRODUCTION, "1")
    cfg = core.RolloutConfig.from_dict(CFG)
    with pytest.raises(ConfigError, match="is served as 'hf', not as serving_format 'adapter'"):
        core.rollout_version(registry, "llm", "2", cfg, open_target(cfg, packaged["v2"], demo_assets, registry, tmp_path))
