"""Approval between registration and rollout: decisions recorded in a real registry (SQLite MLflow store, and the
Vertex AI stand-in), the wait bounded by its timeout, and the step's Markdown and return value."""

import pytest

from kfp_llmops.cli import main
from kfp_llmops.components.registry.await_approval import core
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.registry import open_registry


@pytest.fixture
def registry(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.register("llm", "gs://bucket/models/llm", "o" * 64, {"gate": "passed"})
    return registry


def test_not_required_passes_at_once_and_says_so(registry):
    decision = core.wait_for_decision(registry, "llm", "1", core.ApprovalConfig(), sleep=pytest.fail)
    assert decision.approved and "approval_config.required is false" in decision.reason


def test_the_run_waits_for_the_decision_a_person_records(registry):
    slept = []

    def sleep(seconds):  # a person approves while the step waits
        slept.append(seconds)
        if len(slept) == 3:
            assert main(["approve", "llm", "1", "--reason", "reviewed the eval report", "--registry-uri", registry.uri]) == 0

    decision = core.wait_for_decision(registry, "llm", "1", core.ApprovalConfig(required=True, poll_s=5), sleep=sleep,
                                      log=lambda _: None)
    assert decision.approved and decision.reason == "reviewed the eval report" and decision.by and decision.at
    assert slept == [5, 5, 5]
    tags = registry.get_version("llm", "1").tags
    assert tags["approval_decision"] == "approved" and tags["gate"] == "passed"
    with pytest.raises(UserInputError, match="already approved by .*: a decision is final"):
        core.record(registry, "llm", "1", approved=False, reason="changed my mind")


def test_no_decision_in_time_is_a_rejection(registry):
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    cfg = core.ApprovalConfig(required=True, timeout_s=70, poll_s=30)
    decision = core.wait_for_decision(registry, "llm", "1", cfg, sleep=sleep, clock=lambda: now[0], log=lambda _: None)
    assert not decision.approved and decision.by == "timeout" and now[0] == 70
    assert "no decision within 70 s (approval_config.timeout_s): rejected" in decision.reason
    markdown = decision.markdown("llm", "1", "/runs/evaluate-model/report")
    assert markdown.startswith("# Approval: REJECTED") and "[/runs/evaluate-model/report](/runs/evaluate-model/report)" in markdown


def test_rejection_and_bad_requests_are_named(registry, capsys):
    assert main(["reject", "llm", "1", "--reason", "toxicity up", "--registry-uri", registry.uri]) == 0
    assert "llm version 1: rejected by" in capsys.readouterr().out
    decision = core.read(registry, "llm", "1")
    assert not decision.approved and decision.reason == "toxicity up"
    assert main(["approve", "llm", "9", "--reason", "x", "--registry-uri", registry.uri]) == 2
    assert "no version 9 of 'llm'" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="needs a reason"):
        core.record(registry, "llm", "1", approved=True, reason=" ")
    with pytest.raises(ConfigError, match="timeout_s and poll_s must be > 0"):
        core.ApprovalConfig(required=True, timeout_s=0)


def test_vertex_labels_hold_the_decision():
    from fake_vertex import PARENT, FakeVertex
    from recording_server import RecordingServer

    fake = FakeVertex()
    with RecordingServer(fake) as server:
        registry = open_registry(f"vertex://{PARENT}?api_endpoint={server.url}")
        version = registry.register("llm", "gs://bucket/models/llm", "o" * 64, {"gate": "passed"})
        core.record(registry, "llm", version.version, approved=True, reason="Looks good: BLEU +3", by="Ana@Example.com")
        decision = core.read(registry, "llm", version.version)
        labels = registry.get_version("llm", version.version).tags
    assert decision.approved and decision.by == "ana-example-com" and decision.reason == "looks-good--bleu--3"
    assert labels["gate"] == "passed" and labels["kfp-llmops-sha256"] == "o" * 40  # the other labels are kept


def test_the_step_writes_its_markdown_and_returns_the_decision(registry, tmp_path):
    from kfp.dsl import HTML, Artifact, Markdown

    from kfp_llmops.components.registry.await_approval.component import await_approval

    core.record(registry, "llm", "1", approved=False, reason="not this one")
    registered = Artifact(uri=str(tmp_path / "lineage"), metadata={"registered_model": "llm", "version": 1.0,
                                                                     "registry_uri": registry.uri})
    out = Markdown(uri=str(tmp_path / "approval"))
    approved = await_approval.python_func(registered=registered, evaluation_report=HTML(uri=str(tmp_path / "report")),
                                          approval=out, approval_config={"required": True})
    assert approved is False and out.metadata["by"] and out.metadata["reason"] == "not this one"
    assert (tmp_path / "approval").read_text().startswith("# Approval: REJECTED")
