"""The local target end to end: two real KServe ModelServers, replayed requests, /metrics, the registry alias.

Three rollouts in a row on one registry: a healthy candidate is promoted through every step; one that fails every
fourth request, and one that answers 40 ms slower, are rolled back; stable answers every request throughout; and
nothing is left behind (no child processes, no open ports, no ``canary`` alias).
"""

import os
import socket
from pathlib import Path

import pytest
from faults import server_args
from html_check import check_html

from kfp_llmops.components.deployment.rollout_model import core
from kfp_llmops.components.deployment.rollout_model.local import LocalTarget
from kfp_llmops.deployment.requests import replay_requests
from kfp_llmops.deployment.stats import text_agreement
from kfp_llmops.registry import PREVIOUS, PRODUCTION, open_registry


def children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def port_closed(url: str) -> bool:
    host, port = url.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture(scope="module")
def requests(demo_assets, base_model):
    return replay_requests(str(demo_assets / "eval.jsonl"), base_model, limit=16)


# About 50 s: in `make test-all`. The default run keeps the local target's real servers (the shadow-stage tests
# below) and the rollback decisions on faults (test_core, test_kserve, test_vertex).
@pytest.mark.slow
def test_three_rollouts_promote_then_roll_back_and_leave_nothing_behind(onnx_repository, requests, tmp_path, monkeypatch):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for digest in "abcd":  # version 1 is production; 2, 3, 4 are candidates (all serve the same weights)
        registry.register("reverser", str(onnx_repository), digest * 64, {})
    registry.set_alias("reverser", PRODUCTION, "1")
    cfg = core.RolloutConfig()
    before = children()

    cases = [("2", {}, "promoted", "2"),
             ("3", {"fail_every": 4}, "rolled_back", "2"),
             ("4", {"delay_ms": 40}, "rolled_back", "2")]
    for version, faults, decision, production in cases:
        lines = []
        args = {"candidate": server_args(monkeypatch, **faults)} if faults else {}
        with LocalTarget("reverser", onnx_repository, onnx_repository, requests, cfg, server_args=args,
                         log_dir=tmp_path / version) as target:
            result = core.execute(target, cfg, registry, "reverser", version, log=lines.append)
            urls = dict(target.urls)
        assert result.decision == decision, "\n".join(lines)
        assert registry.aliases("reverser") == {PRODUCTION: production, PREVIOUS: "1"}  # no canary left
        assert target.failed["stable"] == 0 and target.sent["stable"] > 0
        assert children() == before and all(port_closed(u) for u in urls.values())
        if decision == "promoted":
            assert [s.percent for s in result.steps] == [5, 10, 25, 50, 100]
            assert target.failed["candidate"] == 0
            page = core.report_html(result, target="local", model_name="reverser", version=version, stable="1")
            [svg] = check_html(page, plots=1)  # traffic share and p95 of canary and stable, per step
            assert "canary traffic %" in page and "p95 latency (ms)" in page
        else:
            assert [s.percent for s in result.steps] == [5]  # caught at the first step
            assert any(r.endswith("FAIL") for r in result.reasons)


@pytest.fixture(scope="module")
def other_model_repository(base_model, tokenizer, tmp_path_factory) -> Path:
    """A different model under the same name: the demo architecture from seed 0, not pretrained (it answers
    differently from the demo base)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from kfp_llmops.components.compilation.export_onnx.core import export_with_parity
    from kfp_llmops.onnx_runtime import session
    from kfp_llmops.serving.triton_repository import write_repository
    from prompting import format_prompt

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_model)).eval()
    out = tmp_path_factory.mktemp("other-onnx")
    export_with_parity(model, tokenizer, [format_prompt("copy: sun moon")], out / "export")
    write_repository(out / "repo", "reverser", out / "export" / "model.onnx", session(out / "export" / "model.onnx"))
    return out / "repo"


def test_shadow_stage_mirrors_requests_and_stops_a_candidate_that_answers_otherwise(
        onnx_repository, other_model_repository, requests, tmp_path, monkeypatch):
    """The candidate gets copies of stable's requests before any user traffic: the same model agrees on every next
    token and goes on to the canary; a different model, or one that fails, is stopped there with production kept."""
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for digest in "abcd":
        registry.register("reverser", str(onnx_repository), digest * 64, {})
    registry.set_alias("reverser", PRODUCTION, "1")
    cfg = core.RolloutConfig.from_dict({"schedule": [50, 100], "requests_per_step": 20,
                                        "analysis": {"latency_slack_ms": 200},  # outputs and errors are tested here
                                        "shadow": {"requests": 16, "max_disagreement": 0.25, "latency_slack_ms": 200}})
    cases = [("2", onnx_repository, {}, "promoted"),
             ("3", other_model_repository, {}, "rolled_back"),
             ("4", onnx_repository, {"candidate": server_args(monkeypatch, fail_every=4)}, "rolled_back")]
    for version, candidate, faults, decision in cases:
        lines = []
        with LocalTarget("reverser", candidate, onnx_repository, requests, cfg, server_args=faults,
                         log_dir=tmp_path / version) as target:
            result = core.execute(target, cfg, registry, "reverser", version, log=lines.append)
        shadow = result.steps[0]
        assert (shadow.stage, shadow.percent, shadow.canary["requests"], shadow.stable["requests"]) == ("shadow", 0, 16, 16)
        assert result.decision == decision, "\n".join(lines)
        assert target.failed["stable"] == 0
        if decision == "promoted":
            assert shadow.agreement == 1.0 and [s.percent for s in result.steps] == [0, 50, 100]
            assert registry.get_alias("reverser", PRODUCTION).version == "2"
            text = core.report_markdown(result, target="local", model_name="reverser", version=version, stable="1")
            assert "| shadow (0, mirrored) | 16 | 0 |" in text and "| 1.000 | pass |" in text
        else:
            assert len(result.steps) == 1  # stopped before the canary: no user request reached the candidate
            assert target.sent["candidate"] == 16  # the copies only (warm-up requests are outside any count)
            assert registry.get_alias("reverser", PRODUCTION).version == "2"  # production unchanged
            assert any("stopped before the canary" in line for line in lines)
        reasons = "\n".join(r for r in result.reasons if r.endswith("FAIL"))
        if version == "3":
            assert shadow.agreement < 0.75 and reasons.startswith("disagreement with stable ")
        if version == "4":
            assert reasons == "error rate 0.2500 vs stable 0.0000 (limit 0.0000): FAIL"


def test_shadow_stage_compares_chat_replies_for_the_hf_format(base_model, demo_assets, tmp_path):
    """serving_format hf: the copies go through the OpenAI-compatible route and the replies are compared word by word
    (the same model on both sides replies the same, greedy)."""
    from kfp_llmops.deployment.requests import replay_messages

    cfg = core.RolloutConfig.from_dict({"serving_format": "hf", "shadow": {"requests": 4, "latency_slack_ms": 1000}})
    messages = replay_messages(str(demo_assets / "eval_chat.jsonl"), limit=4)
    with LocalTarget("llm", base_model, base_model, messages, cfg, serving_format="hf", log_dir=tmp_path) as target:
        target.start_shadow()
        stats = target.shadow(4)
    assert (stats.compared, stats.agreement) == (4, 1.0)
    assert stats.candidate.requests == stats.stable.requests == 4 and stats.candidate.errors == 0
    assert core.analyse_shadow(stats, cfg.shadow).passed
    assert text_agreement("a b c d", "a b x d") == 0.75 and text_agreement("", "") == 1.0
