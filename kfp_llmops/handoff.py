"""The files one step leaves in its output artifact for another to read: the evaluation's results (``report.json``
and ``examples.jsonl``, read by the regression gate) and the resolved production version (``production.json`` and
its adapter, read by the evaluation). Writer and reader of each in one place. Never imports kfp."""

from __future__ import annotations

import json
from pathlib import Path

from kfp_llmops.errors import UserInputError

EVALUATION_REPORT, EVALUATION_EXAMPLES = "report.json", "examples.jsonl"
PRODUCTION_INFO = "production.json"  # written in every case: {"found": false, ...} when there is no production yet
PRODUCTION_ADAPTER = "adapter"


def write_results(report: dict, out_dir) -> None:
    """``report.json`` (everything but the per-example rows) and ``examples.jsonl`` (one row per model and example)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slim = {**report, "models": {n: {k: v for k, v in r.items() if k != "examples"} for n, r in report["models"].items()}}
    (out / EVALUATION_REPORT).write_text(json.dumps(slim, indent=1, default=float) + "\n", encoding="utf-8")
    with (out / EVALUATION_EXAMPLES).open("w", encoding="utf-8") as fh:
        for name, res in report["models"].items():
            for row in res["examples"]:
                fh.write(json.dumps({"model": name, **row}) + "\n")


def read_results(in_dir) -> dict:
    path = Path(in_dir) / EVALUATION_REPORT
    if not path.exists():
        raise UserInputError(f"{path}: no evaluation report (expected the results of evaluate_model)")
    return json.loads(path.read_text(encoding="utf-8"))


def write_production(info: dict, dest: str | Path) -> dict:
    """``dest/production.json``: what resolve_production found (or ``{"found": false}``); returns it."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    (Path(dest) / PRODUCTION_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info


def read_production(path: str | Path) -> dict:
    """The ``production.json`` of a resolved artifact folder, with the adapter's local path added when found."""
    folder = Path(path)
    info_path = folder / PRODUCTION_INFO
    if not info_path.is_file():
        raise UserInputError(f"{folder} is not the output of resolve_production (no {PRODUCTION_INFO})")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("found"):
        info["adapter_dir"] = str(folder / PRODUCTION_ADAPTER)
    return info
