"""The rollout_model component on the local target: a first rollout, an idempotent rerun, and a clear error."""

import pytest
from html_check import check_html
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

from kfp_llmops.components.deployment.rollout_model.component import rollout_model
from kfp_llmops.registry import PRODUCTION, open_registry


def outputs(tmp_path):
    return dict(report=Markdown(uri=str(tmp_path / "out" / "report")), metrics=Metrics(uri=str(tmp_path / "out" / "metrics")),
                manifest=Artifact(uri=str(tmp_path / "out" / "manifest")),
                report_html=HTML(uri=str(tmp_path / "out" / "report_html")))


@pytest.fixture
def inputs(onnx_repository, base_model, demo_assets, tmp_path):
    import shutil

    repo = tmp_path / "onnx_model"
    shutil.copytree(onnx_repository, repo)
    for f in ("tokenizer.json", "tokenizer_config.json"):  # export_onnx puts the tokenizer beside the models
        shutil.copy(f"{base_model}/{f}", repo / f)
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    version = open_registry(uri).register("reverser", str(repo), "a" * 64, {})
    registered = Artifact(uri=str(tmp_path / "lineage"), metadata={"registry_uri": uri, "registered_model": "reverser",
                                                                   "version": float(version.version)})
    return dict(onnx_model=Model(uri=str(repo)), registered=registered, eval_dataset=Dataset(uri=str(demo_assets / "eval.jsonl"))), uri


def test_first_rollout_promotes_and_a_rerun_changes_nothing(inputs, tmp_path):
    args, uri = inputs
    first = outputs(tmp_path / "1")
    rollout_model.python_func(**args, **first, rollout_config={"requests_per_step": 20})
    assert open_registry(uri).aliases("reverser") == {PRODUCTION: "1"}
    assert first["report"].metadata["decision"] == "promoted" and first["metrics"].metadata["promoted"] == 1
    assert "stable: none (first rollout)" in (tmp_path / "1" / "out" / "report").read_text()
    check_html((tmp_path / "1" / "out" / "report_html").read_text(), plots=1)  # traffic and p95 per step

    again = outputs(tmp_path / "2")
    rollout_model.python_func(**args, **again)
    assert again["report"].metadata["decision"] == "unchanged"
    assert open_registry(uri).aliases("reverser") == {PRODUCTION: "1"}


def test_a_production_version_the_local_target_cannot_serve_is_named(inputs, tmp_path, capsys):
    args, uri = inputs
    registry = open_registry(uri)
    registry.register("reverser", "gs://bucket/old", "b" * 64, {})
    registry.set_alias("reverser", PRODUCTION, "2")
    with pytest.raises(SystemExit):
        rollout_model.python_func(**args, **outputs(tmp_path))
    assert ("ERROR: the production version 2 of reverser points at gs://bucket/old, which is not in the registry's own "
            "store") in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert registry.aliases("reverser") == {PRODUCTION: "2"}


def test_bad_rollout_config_is_named_before_anything_starts(inputs, tmp_path, capsys):
    args, _ = inputs
    with pytest.raises(SystemExit):
        rollout_model.python_func(**args, **outputs(tmp_path), rollout_config={"schedule": [50]})
    assert "ERROR: RolloutConfig.schedule must rise strictly within (0, 100] and end at 100, got [50]" in capsys.readouterr().err


def test_a_second_version_goes_through_the_shadow_stage_against_production(inputs, tmp_path):
    """Production (version 1, downloaded from the registry) answers; version 2 gets mirrored copies first, then the
    canary: the report's first row is the shadow stage."""
    import json

    args, uri = inputs
    rollout_model.python_func(**args, **outputs(tmp_path / "1"), rollout_config={"requests_per_step": 20})
    version = open_registry(uri).register("reverser", args["onnx_model"].path, "c" * 64, {})
    second = {**args, "registered": Artifact(uri=str(tmp_path / "lineage2"), metadata={
        **args["registered"].metadata, "version": float(version.version)})}
    out = outputs(tmp_path / "2")
    lenient = {"latency_slack_ms": 200}  # a busy host's latency is not what this tests
    rollout_model.python_func(**second, **out, rollout_config={"schedule": [50, 100], "requests_per_step": 20,
                                                                "analysis": lenient, "shadow": {"requests": 12, **lenient}})
    assert out["report"].metadata["decision"] == "promoted" and out["report"].metadata["stable_version"] == "1"
    steps = json.loads((tmp_path / "2" / "out" / "manifest").read_text())["result"]["steps"]
    assert [(s["stage"], s["percent"]) for s in steps] == [("shadow", 0), ("canary", 50), ("canary", 100)]
    assert steps[0]["agreement"] == 1.0 and steps[0]["canary"]["requests"] == 12  # the same weights agree
    assert "| shadow (0, mirrored) | 12 |" in (tmp_path / "2" / "out" / "report").read_text()
    check_html((tmp_path / "2" / "out" / "report_html").read_text(), plots=1)
    assert open_registry(uri).aliases("reverser") == {PRODUCTION: "2", "previous": "1"}
