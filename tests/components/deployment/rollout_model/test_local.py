"""The local target end to end: two real KServe ModelServers, replayed requests, /metrics, the registry alias.

Three rollouts in a row on one registry: a healthy candidate is promoted through every step; one that fails every
fourth request, and one that answers 40 ms slower, are rolled back; stable answers every request throughout; and
nothing is left behind (no child processes, no open ports, no ``canary`` alias).
"""

import os
import socket
from pathlib import Path

import pytest
from html_check import check_html

from kfp_llmops.components.deployment.rollout_model import core
from kfp_llmops.components.deployment.rollout_model.local import LocalTarget
from kfp_llmops.components.deployment.rollout_model.targets import replay_requests
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


def test_three_rollouts_promote_then_roll_back_and_leave_nothing_behind(onnx_repository, requests, tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for digest in "abcd":  # version 1 is production; 2, 3, 4 are candidates (all serve the same weights)
        registry.register("reverser", str(onnx_repository), digest * 64, {})
    registry.set_alias("reverser", PRODUCTION, "1")
    cfg = core.RolloutConfig()
    before = children()

    cases = [("2", {}, "promoted", "2"),
             ("3", {"candidate": ["--fail-every", "4"]}, "rolled_back", "2"),
             ("4", {"candidate": ["--delay-ms", "40"]}, "rolled_back", "2")]
    for version, faults, decision, production in cases:
        lines = []
        with LocalTarget("reverser", onnx_repository, onnx_repository, requests, cfg, server_args=faults,
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
