"""Tokenizes instruction pairs with the model's tokenizer and splits them into train and validation; no kfp."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import Example, encode_example

TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"


@dataclass(frozen=True)
class PrepareConfig:
    validation_fraction: float = 0.1
    max_length: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"PrepareConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.max_length < 2:
            raise ConfigError(f"PrepareConfig.max_length must be >= 2, got {self.max_length}")


@dataclass(frozen=True)
class Prepared:
    train: list[Example]
    validation: list[Example]

    def stats(self) -> dict:
        return {
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "train_tokens": sum(len(e.input_ids) for e in self.train),
            "validation_tokens": sum(len(e.input_ids) for e in self.validation),
        }


def prepare(pairs: list[tuple[str, str]], tokenizer, cfg: PrepareConfig | None = None) -> Prepared:
    cfg = cfg or PrepareConfig()
    examples = [encode_example(tokenizer, i, r, cfg.max_length) for i, r in pairs]
    order = list(range(len(examples)))
    random.Random(cfg.seed).shuffle(order)
    n_val = max(1, round(len(examples) * cfg.validation_fraction))
    if n_val >= len(examples):
        raise UserInputError(f"need at least 2 rows to split into train and validation, got {len(examples)}")
    return Prepared(
        train=[examples[i] for i in sorted(order[n_val:])],
        validation=[examples[i] for i in sorted(order[:n_val])],
    )


def write_prepared(prepared: Prepared, out_dir: str | Path) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in ((TRAIN_FILE, prepared.train), (VALIDATION_FILE, prepared.validation)):
        with (out / name).open("w", encoding="utf-8") as fh:
            for e in rows:
                fh.write(json.dumps({"input_ids": e.input_ids, "labels": e.labels}) + "\n")


def read_prepared(in_dir: str | Path) -> Prepared:
    def load(name: str) -> list[Example]:
        with (Path(in_dir) / name).open(encoding="utf-8") as fh:
            return [Example(**json.loads(line)) for line in fh]

    return Prepared(train=load(TRAIN_FILE), validation=load(VALIDATION_FILE))
