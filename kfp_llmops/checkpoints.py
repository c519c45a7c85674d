"""Training checkpoints that survive a killed process: written atomically, resumed from the latest complete one.

A checkpoint is a folder ``step-00000040`` holding the trainable parameters, the optimizer and scheduler state, the
RNG states, the losses so far and a ``COMPLETE`` marker written last. It is assembled under a temporary name and
renamed into place, so a crash while writing leaves only a temporary folder, which resuming ignores (and removes).
Files are read back with ``torch.load(weights_only=True)``: tensors and plain containers only, never pickled code.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = "COMPLETE"
PREFIX = "step-"


@dataclass
class TrainingState:
    step: int  # steps completed
    losses: list[float]
    trainable: dict  # name -> tensor
    optimizer: dict
    scheduler: dict
    torch_rng: object


def save(directory: str | Path, state: TrainingState, keep: int = 2) -> Path:
    import torch

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{PREFIX}{state.step:08d}.", dir=root))
    torch.save(state.trainable, tmp / "trainable.pt")
    torch.save({"optimizer": state.optimizer, "scheduler": state.scheduler, "torch_rng": state.torch_rng}, tmp / "state.pt")
    (tmp / "progress.json").write_text(json.dumps({"step": state.step, "losses": state.losses}), encoding="utf-8")
    (tmp / MARKER).write_text("ok\n", encoding="utf-8")
    final = root / f"{PREFIX}{state.step:08d}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(directory: str | Path) -> list[Path]:
    root = Path(directory)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def load_latest(directory: str | Path) -> TrainingState | None:
    """The latest complete checkpoint, or None; half-written temporary folders are removed."""
    import torch

    root = Path(directory)
    if root.is_dir():
        for partial in root.glob(f".{PREFIX}*"):
            shutil.rmtree(partial, ignore_errors=True)
    found = complete_checkpoints(root)
    if not found:
        return None
    latest = found[-1]
    progress = json.loads((latest / "progress.json").read_text(encoding="utf-8"))
    rest = torch.load(latest / "state.pt", weights_only=True)
    return TrainingState(step=progress["step"], losses=progress["losses"],
                         trainable=torch.load(latest / "trainable.pt", weights_only=True),
                         optimizer=rest["optimizer"], scheduler=rest["scheduler"], torch_rng=rest["torch_rng"])
