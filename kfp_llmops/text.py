"""Text as words: the one normalisation that deduplication, contamination checks and drift all count with."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The lower-cased word characters' runs of ``text``."""
    return _WORD.findall(text.lower())
