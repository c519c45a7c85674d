"""What several commands parse the same way: JSON objects given inline or as files, ``OURS=THEIRS`` pairs."""

from __future__ import annotations

import json
from pathlib import Path

from kfp_llmops.errors import UserInputError


def key_value(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise UserInputError(f"{flag} takes OURS=THEIRS, got {item!r}")
    return key, value


def json_arg(value: str, flag: str) -> dict:
    """A JSON object given inline or as a file path."""
    text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{flag}: not a JSON object or a JSON file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(parsed, dict):
        raise UserInputError(f"{flag}: expected a JSON object, got {type(parsed).__name__}")
    return parsed
