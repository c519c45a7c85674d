"""The tokenized training example: what prompt formats produce and what training, packing and evaluation consume."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # a label that takes no loss (prompt tokens, padding)


@dataclass(frozen=True)
class Example:
    """One tokenized conversation; loss is taken where ``labels`` is not ``IGNORE_INDEX`` (the answers)."""

    input_ids: list[int]
    labels: list[int]
