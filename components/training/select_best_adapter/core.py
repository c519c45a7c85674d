"""Picks the best of a sweep's adapters by validation loss; never imports kfp."""

from __future__ import annotations

import math

from kfp_llmops.errors import UserInputError


def best_index(losses: list[float]) -> int:
    """The index of the lowest finite loss (kfp.local hands collected numbers back as floats; NaN never wins)."""
    finite = [(float(v), i) for i, v in enumerate(losses) if v is not None and math.isfinite(float(v))]
    if not finite:
        raise UserInputError(f"no finite validation loss among {losses!r}: every sweep run diverged")
    return min(finite)[1]
