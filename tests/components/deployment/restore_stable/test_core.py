"""The exit handler: acts only on a failed run, removes the in-flight ``canary`` alias, never moves production."""

from kfp.dsl import PipelineTaskFinalStatus

from kfp_llmops.components.deployment.restore_stable.component import restore_stable
from kfp_llmops.registry import CANARY, PRODUCTION, open_registry


def status(state):
    return PipelineTaskFinalStatus(state=state, pipeline_job_resource_name="run-1", pipeline_task_name="exit-handler-1",
                                   error_code=None if state == "SUCCEEDED" else 1, error_message="")


def registry_with_canary(tmp_path):
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(uri)
    for d in "ab":
        registry.register("llm", f"/m/{d}", d * 64, {})
    registry.set_alias("llm", PRODUCTION, "1")
    registry.set_alias("llm", CANARY, "2")
    return uri, registry


def test_a_failed_run_loses_its_canary_alias_and_keeps_production(tmp_path, capsys):
    uri, registry = registry_with_canary(tmp_path)
    restore_stable.python_func(status=status("FAILED"), target="local", model_name="llm", registry_uri=uri)
    assert registry.aliases("llm") == {PRODUCTION: "1"}
    out = capsys.readouterr().out
    assert "pipeline tasks ended FAILED" in out and "removed the 'canary' alias from llm version 2" in out


def test_a_succeeded_run_is_left_alone(tmp_path):
    uri, registry = registry_with_canary(tmp_path)
    restore_stable.python_func(status=status("SUCCEEDED"), target="local", model_name="llm", registry_uri=uri)
    assert registry.aliases("llm") == {PRODUCTION: "1", CANARY: "2"}
