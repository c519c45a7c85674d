"""One canary rollout for every target: step the traffic, analyse canary against stable, roll back or promote.

The targets (``local``, ``kserve``, ``vertex``) only move traffic and report per-revision statistics; the schedule,
the analysis and the decisions live here, so every target behaves the same. Never imports kfp.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

from kfp_llmops.deployment.config import AnalysisConfig, RolloutConfig, ShadowConfig
from kfp_llmops.deployment.stats import RevisionStats, ShadowStats
from kfp_llmops.errors import ConfigError, UserInputError

TARGETS = ("local", "kserve", "vertex")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


def analyse(canary: RevisionStats, stable: RevisionStats | None, cfg: AnalysisConfig) -> Verdict:
    """Applies the rules; ``stable`` None (a first rollout) leaves only the absolute error-rate rule."""
    reasons = []
    if canary.requests < cfg.min_requests:
        return Verdict(False, (f"inconclusive: the canary served {canary.requests:g} requests in the window, "
                               f"fewer than min_requests={cfg.min_requests}",))
    stable_rate = stable.error_rate if stable else 0.0
    limit = (cfg.max_error_rate_ratio * stable_rate if stable else 0.0) + cfg.error_rate_slack
    ok = canary.error_rate <= limit
    reasons.append(f"error rate {canary.error_rate:.4f} vs stable {stable_rate:.4f} (limit {limit:.4f}): {'ok' if ok else 'FAIL'}")
    passed = ok
    if stable is not None and canary.p95_ms is not None and stable.p95_ms is not None:
        limit = cfg.max_p95_latency_ratio * stable.p95_ms + cfg.latency_slack_ms
        ok = canary.p95_ms <= limit
        reasons.append(f"p95 latency {canary.p95_ms:.2f} ms vs stable {stable.p95_ms:.2f} ms (limit {limit:.2f} ms): {'ok' if ok else 'FAIL'}")
        passed &= ok
    for check in cfg.custom:
        c, s = canary.custom.get(check.name), (stable.custom.get(check.name) if stable else None)
        if c is None or s is None or math.isnan(c) or math.isnan(s):
            reasons.append(f"{check.name}: no data (canary {c}, stable {s}): FAIL")
            passed = False
            continue
        ok = c <= check.max_ratio * s
        reasons.append(f"{check.name} {c:.4g} vs stable {s:.4g} (max ratio {check.max_ratio}): {'ok' if ok else 'FAIL'}")
        passed &= ok
    return Verdict(passed, tuple(reasons))


def analyse_shadow(stats: ShadowStats, cfg: ShadowConfig) -> Verdict:
    """The shadow stage's rules: output disagreement, p95 latency ratio and error rate against stable."""
    c, s = stats.candidate, stats.stable
    if stats.compared < 1:
        return Verdict(False, (f"inconclusive: none of the {c.requests:g} mirrored requests was answered by both "
                               "candidate and stable",))
    disagreement = 1.0 - stats.agreement
    ok = disagreement <= cfg.max_disagreement
    reasons = [f"disagreement with stable {disagreement:.3f} on {stats.compared} requests (max "
               f"{cfg.max_disagreement:.3f}): {'ok' if ok else 'FAIL'}"]
    passed = ok
    limit = s.error_rate + cfg.error_rate_slack
    ok = c.error_rate <= limit
    reasons.append(f"error rate {c.error_rate:.4f} vs stable {s.error_rate:.4f} (limit {limit:.4f}): {'ok' if ok else 'FAIL'}")
    passed &= ok
    if c.p95_ms is not None and s.p95_ms is not None:
        limit = cfg.max_p95_latency_ratio * s.p95_ms + cfg.latency_slack_ms
        ok = c.p95_ms <= limit
        reasons.append(f"p95 latency {c.p95_ms:.2f} ms vs stable {s.p95_ms:.2f} ms (limit {limit:.2f} ms): "
                       f"{'ok' if ok else 'FAIL'}")
        passed &= ok
    return Verdict(passed, tuple(reasons))


class Target(Protocol):
    """What a rollout target does; the rollout decides when. The shadow stage (``start_shadow`` then ``shadow``)
    is asked of targets only when ``RolloutConfig.shadow`` is on."""

    def has_stable(self) -> bool: ...

    def start_shadow(self) -> None: ...  # the candidate beside stable with no traffic of its own

    def shadow(self, requests: int) -> ShadowStats: ...  # ``requests`` copied to the candidate, compared

    def start(self, percent: int) -> None: ...  # the candidate beside stable, ``percent`` of traffic to it

    def set_traffic(self, percent: int) -> None: ...

    def wait_ready(self, timeout_s: float) -> None: ...

    def observe(self, percent: int) -> tuple[RevisionStats, RevisionStats | None]: ...  # (canary, stable)

    def rollback(self) -> None: ...

    def promote(self) -> None: ...


class RolloutFailed(UserInputError):
    """The canary failed its analysis and was rolled back; the message has the reasons."""


@dataclass
class StepResult:
    percent: int
    canary: dict
    stable: dict | None
    passed: bool
    reasons: list[str]
    stage: str = "canary"  # or "shadow" (percent 0: the candidate answered copies only)
    agreement: float | None = None


@dataclass
class RolloutResult:
    decision: str  # "promoted" or "rolled_back"
    steps: list[StepResult]
    reasons: list[str]
    first_rollout: bool

    def to_dict(self) -> dict:
        return asdict(self)


def run(target: Target, cfg: RolloutConfig, *, log: Callable[[str], None] = print) -> RolloutResult:
    """Runs the schedule. Any failure (analysis, readiness deadline, an API error) rolls the canary back first."""
    first = not target.has_stable()
    schedule = (100,) if first else cfg.schedule
    steps: list[StepResult] = []
    baseline: RevisionStats | None = None  # the last window in which stable served enough requests
    started = False
    try:
        if not first and cfg.shadow.enabled:
            t0 = time.monotonic()
            target.start_shadow()
            started = True
            target.wait_ready(cfg.progress_deadline_s)
            stats = target.shadow(cfg.shadow.requests)
            verdict = analyse_shadow(stats, cfg.shadow)
            steps.append(StepResult(0, asdict(stats.candidate), asdict(stats.stable), verdict.passed,
                                    list(verdict.reasons), stage="shadow", agreement=stats.agreement))
            log(f"shadow on {stats.candidate.requests:g} mirrored requests: {'pass' if verdict.passed else 'FAIL'} in "
                f"{time.monotonic() - t0:.1f} s; " + "; ".join(verdict.reasons))
            if not verdict.passed:
                target.rollback()
                log("stopped before the canary: the candidate served no user; all traffic stays on the stable revision")
                return RolloutResult("rolled_back", steps, list(verdict.reasons), first)
        for i, percent in enumerate(schedule):
            t0 = time.monotonic()
            if not started:
                target.start(percent)
                started = True
            else:
                target.set_traffic(percent)
            target.wait_ready(cfg.progress_deadline_s)
            canary, stable = target.observe(percent)
            if stable is not None and stable.requests >= cfg.analysis.min_requests:
                baseline = stable
            verdict = analyse(canary, None if first else (baseline or stable), cfg.analysis)
            steps.append(StepResult(percent, asdict(canary), asdict(stable) if stable else None, verdict.passed, list(verdict.reasons)))
            log(f"canary at {percent:3d} %: {'pass' if verdict.passed else 'FAIL'} in {time.monotonic() - t0:.1f} s; "
                + "; ".join(verdict.reasons))
            if not verdict.passed:
                target.rollback()
                log(f"rolled back at {percent} %: all traffic to the stable revision")
                return RolloutResult("rolled_back", steps, list(verdict.reasons), first)
        target.promote()
        log("promoted: the candidate now takes all traffic")
        return RolloutResult("promoted", steps, [], first)
    except BaseException:
        if started:
            log("rollout interrupted: rolling back to the stable revision")
            target.rollback()
        raise


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ConfigError(f"rollout target must be one of {TARGETS}, got {target!r}")
    return target


def execute(target: Target, cfg: RolloutConfig, registry, model_name: str, version: str, *,
            log: Callable[[str], None] = print) -> RolloutResult:
    """A rollout with the registry: ``canary`` names the version while it rolls out; promotion moves ``production``
    to it; a rollback (or any failure) leaves ``production`` where it was. ``canary`` is always removed."""
    from kfp_llmops.registry import CANARY, PRODUCTION, promote

    registry.set_alias(model_name, CANARY, version)
    try:
        result = run(target, cfg, log=log)
    finally:
        registry.delete_alias(model_name, CANARY)
    if result.decision == "promoted":
        replaced = promote(registry, model_name, version)
        log(f"registry: {model_name} version {version} is now '{PRODUCTION}'"
            + (f" (version {replaced} is 'previous')" if replaced else ""))
    return result


def rollout_version(registry, model_name: str, version: str, cfg: RolloutConfig, open_target, *,
                    log: Callable[[str], None] = print):
    """Rolls ``version`` out unless it already is ``production``. ``open_target(stable=...)`` is a context manager
    yielding ``(target, rendered)``; it is entered only when there is something to roll out.
    Returns ``(result, stable version or None, rendered)``."""
    from kfp_llmops.registry import PRODUCTION

    stable = registry.get_alias(model_name, PRODUCTION)
    if stable is not None and stable.version == version:
        log(f"{model_name} version {version} is already '{PRODUCTION}': nothing to roll out")
        return RolloutResult("unchanged", [], [], False), stable, {}
    with open_target(stable=stable) as (target, rendered):
        result = execute(target, cfg, registry, model_name, version, log=log)
    return result, stable, rendered


def raise_if_rolled_back(result: RolloutResult, model_name: str, version: str) -> None:
    if result.decision == "rolled_back":
        raise RolloutFailed(f"{model_name} version {version} was rolled back: " + "; ".join(
            r for r in result.reasons if r.endswith("FAIL") or r.startswith("inconclusive")))


def report_html(result: RolloutResult, *, target: str, model_name: str, version: str, stable: str | None) -> str:
    """The rollout as a page: canary traffic share and p95 latency of canary vs stable per step, then the report."""
    from html import escape

    from kfp_llmops.plots import rollout_steps

    steps = [{"percent": s.percent, "passed": s.passed, "canary_p95_ms": s.canary.get("p95_ms"),
              "stable_p95_ms": (s.stable or {}).get("p95_ms"), "label": "shadow" if s.stage == "shadow" else None}
             for s in result.steps]
    plot = f'<figure id="rollout-steps">{rollout_steps(steps)}</figure>' if steps else "<p>no traffic steps</p>"
    text = report_markdown(result, target=target, model_name=model_name, version=version, stable=stable)
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>Rollout of {escape(model_name)} version '
            f'{escape(version)}</title><style>figure{{margin:0}} figure svg{{max-width:100%;height:auto}}</style>'
            f'</head><body style="font-family:system-ui,sans-serif">\n'
            f"<h1>Rollout of {escape(model_name)} version {escape(version)}: {escape(result.decision.replace('_', ' '))}</h1>\n"
            f"{plot}\n<pre>{escape(text)}</pre>\n</body></html>\n")


def report_markdown(result: RolloutResult, *, target: str, model_name: str, version: str, stable: str | None) -> str:
    lines = [
        f"# Rollout of {model_name} version {version}: {result.decision.replace('_', ' ')}",
        "",
        f"- target: `{target}`; stable: {f'version {stable}' if stable else 'none (first rollout)'}",
        "",
        "| canary % | canary requests | canary errors | canary p95 ms | stable requests | stable p95 ms | agreement | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in result.steps:
        st = s.stable or {}
        p95 = s.canary.get("p95_ms")
        sp95 = st.get("p95_ms")
        share = "shadow (0, mirrored)" if s.stage == "shadow" else str(s.percent)
        lines.append(f"| {share} | {s.canary['requests']:g} | {s.canary['errors']:g} | "
                     f"{'' if p95 is None else f'{p95:.2f}'} | {st.get('requests', 0):g} | "
                     f"{'' if sp95 is None else f'{sp95:.2f}'} | {'' if s.agreement is None else f'{s.agreement:.3f}'} | "
                     f"{'pass' if s.passed else 'FAIL'} |")
    if result.reasons:
        lines += ["", "## Why it was rolled back", *(f"- {r}" for r in result.reasons)]
    return "\n".join(lines) + "\n"
