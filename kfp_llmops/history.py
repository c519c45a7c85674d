"""The training history saved beside an adapter (``history.json``: loss and learning rate per step, validation losses;
``losses.json`` alone from older adapters), read by the training report and by sweep comparisons."""

from __future__ import annotations

import json
from pathlib import Path


def read_history(adapter_dir: str | Path) -> dict:
    """``history.json`` beside the adapter (loss, learning_rate, validation), or the loss alone from older adapters."""
    folder = Path(adapter_dir)
    if (folder / "history.json").is_file():
        return json.loads((folder / "history.json").read_text(encoding="utf-8"))
    return {"loss": json.loads((folder / "losses.json").read_text(encoding="utf-8")), "learning_rate": [], "validation": []}
