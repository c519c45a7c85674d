"""A person's approval between registration and rollout, recorded in the model registry; no kfp here.

``kfp-llmops approve MODEL VERSION --reason ...`` (or ``reject``) writes the decision as tags of the registered version
(MLflow tags; Vertex AI labels, which keep at most 63 lowercase characters of each value). The pipeline's
``await-approval`` step polls for it until ``timeout_s``; no decision by then is a rejection. Off by default: a
pipeline without ``approval_config.required`` passes at once and says so.
"""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from kfp_llmops.configs import ApprovalConfig
from kfp_llmops.errors import UserInputError

DECISION, BY, REASON, AT = "approval_decision", "approval_by", "approval_reason", "approval_at"
APPROVED, REJECTED = "approved", "rejected"


@dataclass(frozen=True)
class Decision:
    approved: bool
    by: str
    reason: str
    at: str

    def markdown(self, model: str, version: str, report_uri: str = "") -> str:
        lines = [f"# Approval: {'APPROVED' if self.approved else 'REJECTED'}", "",
                 f"- model: `{model}` version {version}", f"- by: {self.by}", f"- at: {self.at}", f"- reason: {self.reason}"]
        if report_uri:
            lines.append(f"- evaluation report: [{report_uri}]({report_uri})")
        return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def who() -> str:
    """The person deciding: ``KFP_LLMOPS_USER``, else the login name."""
    return os.environ.get("KFP_LLMOPS_USER") or getpass.getuser()


def record(registry, name: str, version: str, *, approved: bool, reason: str, by: str = "") -> Decision:
    """Writes a decision on ``name`` version ``version``; a version already decided keeps its decision."""
    if not reason.strip():
        raise UserInputError("a decision needs a reason (--reason '...'): it is kept in the registry with who decided")
    current = registry.get_version(name, str(version))
    if current is None:
        raise UserInputError(f"no version {version} of {name!r} in {registry.uri}")
    if current.tags.get(DECISION):
        raise UserInputError(f"{name} version {version} was already {current.tags[DECISION]} by "
                             f"{current.tags.get(BY, '?')} at {current.tags.get(AT, '?')}: a decision is final")
    decision = Decision(approved, by or who(), reason.strip(), _now())
    registry.set_tags(name, str(version), {DECISION: APPROVED if approved else REJECTED, BY: decision.by,
                                           REASON: decision.reason, AT: decision.at})
    return decision


def read(registry, name: str, version: str) -> Decision | None:
    current = registry.get_version(name, str(version))
    if current is None:
        raise UserInputError(f"no version {version} of {name!r} in {registry.uri}")
    value = current.tags.get(DECISION, "")
    if value not in (APPROVED, REJECTED):
        return None
    return Decision(value == APPROVED, current.tags.get(BY, ""), current.tags.get(REASON, ""), current.tags.get(AT, ""))


def wait_for_decision(registry, name: str, version: str, cfg: ApprovalConfig, *, sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] = print) -> Decision:
    """The recorded decision, polled every ``poll_s`` until ``timeout_s``; no decision in time is a rejection."""
    if not cfg.required:
        return Decision(True, "not required", "approval_config.required is false", _now())
    start = clock()
    log(f"waiting up to {cfg.timeout_s:.0f} s for `kfp-llmops approve {name} {version} --reason ...` (or reject)")
    while True:
        decision = read(registry, name, version)
        if decision is not None:
            return decision
        waited = clock() - start
        if waited >= cfg.timeout_s:
            return Decision(False, "timeout", f"no decision within {cfg.timeout_s:.0f} s (approval_config.timeout_s): "
                                              f"rejected; nothing was rolled out", _now())
        sleep(min(cfg.poll_s, cfg.timeout_s - waited))
