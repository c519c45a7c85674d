"""Tokenizes instruction or chat records in the run's prompt format (the tokenizer's chat template by default) and
splits them into train and validation; the format is saved with the data for training, evaluation and serving. No kfp."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.prompts import PromptFormat
from kfp_llmops.tokenized import TRAIN_FILE, VALIDATION_FILE, ExampleWriter, Prepared

@dataclass(frozen=True)
class PrepareConfig:
    validation_fraction: float = 0.1
    max_length: int = 256
    seed: int = 0
    prompt_format: str = "auto"  # auto | chat-template | plain | a Jinja chat template (see kfp_llmops.prompts)
    system_prompt: str = ""  # put first in every conversation without a system turn

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"PrepareConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.max_length < 2:
            raise ConfigError(f"PrepareConfig.max_length must be >= 2, got {self.max_length}")


def prepare(records: list, tokenizer, cfg: PrepareConfig | None = None, where: list[str] | None = None) -> Prepared:
    """``records``: ``(instruction, response)`` pairs or message lists (:func:`kfp_llmops.datasets.records`);
    ``where`` names each one in errors (``file:line``)."""
    cfg = cfg or PrepareConfig()
    fmt = PromptFormat.resolve(tokenizer, cfg.prompt_format, cfg.system_prompt)
    examples = fmt.encode_many(tokenizer, records, cfg.max_length, where=where)
    order = list(range(len(examples)))
    random.Random(cfg.seed).shuffle(order)
    n_val = max(1, round(len(examples) * cfg.validation_fraction))
    if n_val >= len(examples):
        raise UserInputError(f"need at least 2 rows to split into train and validation, got {len(examples)}")
    return Prepared(
        train=[examples[i] for i in sorted(order[n_val:])],
        validation=[examples[i] for i in sorted(order[:n_val])],
        prompt_format=fmt,
    )


def split_indexes(n: int, cfg: PrepareConfig) -> set[int]:
    """The validation rows' indexes: the same seeded shuffle as :func:`prepare`."""
    order = list(range(n))
    random.Random(cfg.seed).shuffle(order)
    n_val = max(1, round(n * cfg.validation_fraction))
    if n_val >= n:
        raise UserInputError(f"need at least 2 rows to split into train and validation, got {n}")
    return set(order[:n_val])


def prepare_file(path: str | Path, tokenizer, out_dir: str | Path, cfg: PrepareConfig | None = None,
                 chunk_rows: int = 50_000, workers: int | None = None) -> dict:
    """:func:`prepare` and ``kfp_llmops.tokenized.write_prepared`` streamed over a canonical JSONL file, a chunk of rows in memory at a
    time: the same split and the same bytes, in memory bounded by the chunk (a million chat rows). Returns the stats.
    ``workers`` processes (default: the CPUs this process may use, at most 8) encode chunks in parallel, in order;
    rendering chat templates is most of the work. The folder is written in place: callers write into a temporary
    folder (``lineage.atomic_dir``)."""
    from kfp_llmops.datasets import iter_records
    from kfp_llmops.parallel import ordered_map

    cfg = cfg or PrepareConfig()
    fmt = PromptFormat.resolve(tokenizer, cfg.prompt_format, cfg.system_prompt)
    with Path(path).open("rb") as fh:  # the rows to split; a bad one is named when it is read below
        n = sum(1 for raw in fh if raw.strip())
    validation = split_indexes(n, cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = {"train_rows": 0, "validation_rows": 0, "train_tokens": 0, "validation_tokens": 0}
    index = 0

    def encode(chunk):  # in a worker process: rendering chat templates is most of the work
        records, where = chunk
        return fmt.encode_many(tokenizer, records, cfg.max_length, where=where)

    with ExampleWriter(out / TRAIN_FILE) as train, ExampleWriter(out / VALIDATION_FILE) as val:
        for examples in ordered_map(encode, iter_records(path, chunk_rows), workers if n > chunk_rows else 1):
            for e in examples:
                split = "validation" if index in validation else "train"
                (val if split == "validation" else train).write(e)
                stats[f"{split}_rows"] += 1
                stats[f"{split}_tokens"] += len(e.input_ids)
                index += 1
    fmt.save(out)
    return {**stats, "prompt_format": fmt.kind}
