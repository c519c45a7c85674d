"""Fault injection for the local servers' ``--request-hook`` (:mod:`kfp_llmops.serving.hooks`): every N-th request
fails, every request waits D ms, optionally only those for one served name. Test support: it lives here, not in the
servers. ``server_args(monkeypatch, fail_every=3)`` returns the arguments a server takes, with the configuration in
the environment the server process inherits."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

ENV = "KFP_LLMOPS_TEST_FAULTS"  # {"fail_every": N, "delay_ms": D, "only": NAME}
_count = itertools.count(1)


def server_args(monkeypatch, *, fail_every: int = 0, delay_ms: float = 0.0, only: str = "") -> list[str]:
    monkeypatch.setenv(ENV, json.dumps({"fail_every": fail_every, "delay_ms": delay_ms, "only": only}))
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH", "")])))
    return ["--request-hook", "faults:inject"]


def inject(name: str) -> None:
    """The hook: called by the server with the served name before each inference."""
    cfg = json.loads(os.environ.get(ENV) or "{}")
    if cfg.get("only") and name != cfg["only"]:
        return
    n = next(_count)
    if cfg.get("delay_ms"):
        time.sleep(cfg["delay_ms"] / 1000)
    if cfg.get("fail_every") and n % cfg["fail_every"] == 0:
        raise RuntimeError(f"injected failure (request {n}, every {cfg['fail_every']})")
