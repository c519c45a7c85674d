"""Tokenized examples on disk, columnar: an Arrow IPC file with ``input_ids`` and ``labels`` (``list<int32>``).

The file is memory-mapped when read, so a split of a million conversations is a sequence of examples that costs
almost no memory until an example is touched: training draws batches from it by index, and only those rows become
Python lists. It is the format Hugging Face ``datasets`` keeps on disk too; pandas, polars, DuckDB and ``datasets``
read it directly (``pyarrow.ipc.open_file``, ``pandas.read_feather``). Rows are written in record batches of a fixed
size whatever the caller's chunking, so the same examples always give the same bytes. No kfp here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path

from kfp_llmops.errors import UserInputError
from kfp_llmops.examples import Example
from kfp_llmops.prompts import PromptFormat

# Arrow IPC files (columns input_ids, labels as list<int32>), memory-mapped when read: see kfp_llmops.tokenized
TRAIN_FILE = "train.arrow"
VALIDATION_FILE = "validation.arrow"
FORMAT = "token-ids-arrow"

BATCH_ROWS = 8192
COLUMNS = ("input_ids", "labels")


def _schema():
    import pyarrow as pa

    return pa.schema([(name, pa.list_(pa.int32())) for name in COLUMNS])


class ExampleWriter:
    """Appends examples to an Arrow IPC file in record batches of ``BATCH_ROWS`` rows; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow as pa

        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, _schema())
        self._rows: list[Example] = []

    def write(self, example: Example) -> None:
        self._rows.append(example)
        if len(self._rows) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            arrays = [pa.array([getattr(e, name) for e in self._rows], type=pa.list_(pa.int32())) for name in COLUMNS]
            self._writer.write_batch(pa.record_batch(arrays, schema=_schema()))
            self._rows = []

    def __enter__(self) -> ExampleWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self._flush()
            self._writer.close()
        finally:
            self._sink.close()


def write_examples(path: str | Path, examples) -> None:
    with ExampleWriter(path) as writer:
        for e in examples:
            writer.write(e)


class TokenizedExamples(Sequence):
    """A memory-mapped split: ``len``, ``[i]`` and ``[a:b]`` give :class:`Example` objects made on demand."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow as pa

        self.path = str(path)
        try:
            reader = pa.ipc.open_file(pa.memory_map(self.path, "r"))
            if reader.schema.names[: len(COLUMNS)] != list(COLUMNS):
                raise ValueError(f"columns {reader.schema.names}, expected {list(COLUMNS)}")
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        except (OSError, ValueError, pa.ArrowException) as exc:
            from kfp_llmops.errors import UserInputError

            raise UserInputError(f"{self.path}: not a tokenized-examples Arrow file ({exc})") from None
        # per batch and column: (offsets, values) numpy views into the mapped file (no copy)
        self._columns = [[(b.column(k).offsets.to_numpy(), b.column(k).values.to_numpy()) for k in range(len(COLUMNS))]
                         for b in batches if b.num_rows]
        self._starts = []
        total = 0
        for b in batches:
            if b.num_rows:
                self._starts.append(total)
                total += b.num_rows
        self._len = total

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"example {index} out of range ({self._len})")
        b = bisect.bisect_right(self._starts, index) - 1
        row = index - self._starts[b]
        ids, labels = ((values[offsets[row] : offsets[row + 1]].tolist()) for offsets, values in self._columns[b])
        return Example(ids, labels)

    def tokens(self) -> int:
        """The split's token count, from the offsets alone."""
        return int(sum(int(offsets[-1] - offsets[0]) for (offsets, _), _ in self._columns))

    def __eq__(self, other) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"TokenizedExamples({self.path!r}, {self._len} examples)"


class Truncated(Sequence):
    """A lazy view of ``examples`` cut to ``length`` tokens each."""

    def __init__(self, examples: Sequence[Example], length: int) -> None:
        self._examples, self._length = examples, length

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        e = self._examples[index]
        n = self._length
        return e if len(e.input_ids) <= n else Example(e.input_ids[:n], e.labels[:n])


# --- a prepared dataset: the two splits and the prompt format, in one folder ---------------------------------------

@dataclass(frozen=True)
class Prepared:
    """The two splits: lists in memory, or :class:`TokenizedExamples` read (memory-mapped) from a prepared folder."""

    train: Sequence[Example]
    validation: Sequence[Example]
    prompt_format: PromptFormat = PromptFormat()

    def stats(self) -> dict:
        return {
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "train_tokens": _tokens(self.train),
            "validation_tokens": _tokens(self.validation),
            "prompt_format": self.prompt_format.kind,
        }


def _tokens(examples: Sequence[Example]) -> int:
    return examples.tokens() if isinstance(examples, TokenizedExamples) else sum(len(e.input_ids) for e in examples)


def write_prepared(prepared: Prepared, out_dir: str | Path) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_examples(out / TRAIN_FILE, prepared.train)
    write_examples(out / VALIDATION_FILE, prepared.validation)
    prepared.prompt_format.save(out)


def read_prepared(in_dir: str | Path) -> Prepared:
    """The splits memory-mapped: nothing is read into memory until an example is used."""
    d = Path(in_dir)
    missing = [name for name in (TRAIN_FILE, VALIDATION_FILE) if not (d / name).is_file()]
    if missing:
        old = " (train.jsonl is the token-id JSONL of an earlier kfp-llmops)" if (d / "train.jsonl").is_file() else ""
        raise UserInputError(f"{d}: not a prepared dataset: {', '.join(missing)} missing{old}; "
                             "run prepare_dataset on the validated data")
    return Prepared(train=TokenizedExamples(d / TRAIN_FILE), validation=TokenizedExamples(d / VALIDATION_FILE),
                    prompt_format=PromptFormat.load(d))
