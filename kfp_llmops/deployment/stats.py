"""What one revision served in one analysis window, what a shadow stage compared, and how alike two replies are."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RevisionStats:
    """What one revision served in one window."""

    requests: float
    errors: float
    p95_ms: float | None
    custom: dict = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ShadowStats:
    """Candidate and stable on the same mirrored requests: each one's statistics, and how often they agreed."""

    candidate: RevisionStats
    stable: RevisionStats
    compared: int  # requests both answered
    agreement: float  # mean agreement over those, in [0, 1]


def text_agreement(a: str, b: str) -> float:
    """How alike two replies are, word by word (difflib's ratio: 1.0 identical, 0.0 nothing in common)."""
    import difflib

    x, y = a.split(), b.split()
    if not x and not y:
        return 1.0
    return difflib.SequenceMatcher(None, x, y, autojunk=False).ratio()
