"""Reading instruction datasets (JSONL of ``{"instruction", "response"}``) with errors that name file and line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kfp_llmops.errors import UserInputError


@dataclass(frozen=True)
class Records:
    """Rows of a JSONL file and the 1-based line number each row came from."""

    path: str
    rows: list[dict]
    lines: list[int]


def read_jsonl(path: str | Path) -> Records:
    p = Path(path)
    if p.is_dir():
        raise UserInputError(f"{p}: is a directory, expected a JSONL file")
    if not p.exists():
        raise UserInputError(f"{p}: no such file")
    rows, lines = [], []
    with p.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserInputError(f"{p}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UserInputError(f"{p}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{p}:{number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
            lines.append(number)
    if not rows:
        raise UserInputError(f"{p}: the file has no records")
    return Records(path=str(p), rows=rows, lines=lines)


def instruction_pairs(records: Records) -> list[tuple[str, str]]:
    """``(instruction, response)`` for each row; a missing or non-string field names its line."""
    pairs = []
    for row, line in zip(records.rows, records.lines):
        for field in ("instruction", "response"):
            if not isinstance(row.get(field), str):
                raise UserInputError(f"{records.path}:{line}: field {field!r} is missing or not a string")
        pairs.append((row["instruction"], row["response"]))
    return pairs
