"""The monitor pipeline on kfp.local: healthy traffic changes nothing; drifting traffic rolls production back."""

from payload_logs import drifting, like_training, record

from kfp_llmops.components.monitoring.monitor_model.core import reference_pairs
from kfp_llmops.local_run import run_local
from kfp_llmops.pipelines.registry import build
from kfp_llmops.registry import PREVIOUS, PRODUCTION, open_registry


def test_monitor_pipeline_leaves_healthy_production_and_rolls_back_on_drift(demo_assets, tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for digest in "ab":
        registry.register("llm", f"gs://bucket/served/{digest}", digest * 64, {})
    registry.set_alias("llm", PREVIOUS, "1")
    registry.set_alias("llm", PRODUCTION, "2")
    train = str(demo_assets / "train.jsonl")
    healthy = record(tmp_path / "healthy.jsonl", like_training(reference_pairs(train)))
    drifted = record(tmp_path / "drifted.jsonl", drifting())
    arguments = {"reference_data": train, "registry_uri": registry.uri, "monitor_config": {"on_breach": ["rollback"]}}

    ok = run_local(build("monitor", "vertex"), {**arguments, "payload_log": str(healthy)}, tmp_path / "runs")
    assert ok.succeeded, ok.text()
    assert ok.task_output("monitor-model")["parameterValues"]["Output"] is True
    assert registry.aliases("llm") == {PRODUCTION: "2", PREVIOUS: "1"}

    bad = run_local(build("monitor", "vertex"), {**arguments, "payload_log": str(drifted)}, tmp_path / "runs")
    assert bad.succeeded, bad.text()
    assert bad.task_output("monitor-model")["parameterValues"]["Output"] is False
    report = bad.artifacts("monitor-model", "report")[0]
    assert report["metadata"]["breached"] is True and report["metadata"]["actions"] == [
        "registry: llm production 2 -> 1 (the local target has no running server to move)"]
    assert registry.aliases("llm") == {PRODUCTION: "1", PREVIOUS: "2"}
    text = bad.text()  # what `kfp-llmops run --pipeline monitor` prints
    assert "Monitoring: llm version 2: BREACH: input drift (max PSI)" in text
    assert "  action: registry: llm production 2 -> 1" in text
