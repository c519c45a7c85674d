"""Reading training datasets: JSONL, CSV, Parquet or Arrow, a file or a folder of shards; instruction, chat, ShareGPT or
prompt-completion records; errors that say where.

Every reader returns a :class:`Table`: a pandas DataFrame with the canonical columns of its record format
(``instruction``, ``input``, ``response`` or ``messages``) and the 1-based line (JSONL, CSV: the file's line; Parquet:
the row number) each row came from. Column names in the file can differ: pass ``columns={"instruction": "prompt"}``.
Files are read in chunks (CSV, Parquet, Arrow) or line by line (JSONL); the input file is never modified. Arrow is the
IPC format, stream or file (what Hugging Face ``datasets`` ``save_to_disk`` writes). A folder is read as its data files
(``.jsonl``, ``.ndjson``, ``.csv``, ``.parquet``, ``.pq``, ``.arrow`` at any depth, hidden ones left out, in path order, one
format): the shards a Hugging Face dataset repository, ``save_to_disk``, a BigQuery export or a Spark job writes. Each
row is then located as ``shard:line`` (the shard's path within the folder). A folder whose shards are named for
several splits (``train-00000-of-00002.parquet`` and ``test-00000-of-00001.parquet``, or ``train/`` and ``test/``, as
Hugging Face names them) is refused, naming them: pass the folder of one split.

Chat contents given as OpenAI-style text parts are joined into one string. TRL's prompt-completion records
(``prompt``, ``completion``: strings, or message lists in its conversational form) are read as instruction or chat
records. ShareGPT records (``conversations: [{from, value}]``, optionally a ``system`` string; what LLaMA-Factory,
Axolotl and many Hugging Face datasets use) are read as chat records: ``human`` becomes ``user``, ``gpt`` (and
``chatgpt``) ``assistant``, the ``system`` field a first system turn. Other roles (``observation``,
``function_call``...) are kept as they are, so validation reports them by line as unknown roles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kfp_llmops.errors import ConfigError, UserInputError

FILE_FORMATS = ("jsonl", "csv", "parquet", "arrow")
RECORD_FORMATS = ("instruction", "chat", "sharegpt")
CANONICAL = {"instruction": ("instruction", "input", "response"), "chat": ("messages",), "sharegpt": ("conversations", "system")}
REQUIRED = {"instruction": ("instruction", "response"), "chat": ("messages",), "sharegpt": ("conversations",)}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant",
                  "assistant": "assistant"}
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
             ".arrow": "arrow"}
# in a folder, .json is left out: it is where datasets keep their metadata (dataset_info.json, state.json)
_SHARD_SUFFIXES = {k: v for k, v in _SUFFIXES.items() if k != ".json"}
# split names in shard paths, as Hugging Face datasets resolves them
_SPLITS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation", "val": "validation",
           "dev": "validation", "test": "test", "testing": "test", "eval": "test", "evaluation": "test"}
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset is and how to read it; ``auto`` detects the file format from the suffix and the record
    format from the columns (``messages`` means chat, ``conversations`` ShareGPT)."""

    path: str
    file_format: str = "auto"
    record_format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    keep: tuple[str, ...] = ()  # other fields kept beside the canonical columns (e.g. the eval set's slice fields)

    def __post_init__(self) -> None:
        if self.file_format not in ("auto", *FILE_FORMATS):
            raise ConfigError(f"DatasetSpec.file_format must be 'auto' or one of {FILE_FORMATS}, got {self.file_format!r}")
        if self.record_format not in ("auto", *RECORD_FORMATS):
            raise ConfigError(f"DatasetSpec.record_format must be 'auto' or one of {RECORD_FORMATS}, got {self.record_format!r}")
        known = {c for cols in CANONICAL.values() for c in cols}
        unknown = sorted(set(self.columns) - known)
        if unknown:
            raise ConfigError(f"DatasetSpec.columns maps unknown field(s) {unknown}; fields are {sorted(known)}")

    def resolved_file_format(self) -> str:
        if self.file_format != "auto":
            return self.file_format
        fmt = _SUFFIXES.get(Path(self.path).suffix.lower())
        if fmt is None:
            raise UserInputError(f"{self.path}: cannot tell the file format from the suffix; pass file_format (one of {FILE_FORMATS})")
        return fmt


@dataclass
class Table:
    path: str
    file_format: str
    record_format: str
    frame: object  # pandas.DataFrame with the canonical columns present in the file
    lines: list  # each row's 1-based line (an int), or "shard:line" for a folder of shards
    source_record_format: str = ""  # the file's own record format where it differs: sharegpt, prompt-completion

    def __len__(self) -> int:
        return len(self.lines)

    def line_of(self, index: int):
        return self.lines[index]

    def where(self, index: int) -> str:
        """``path:line`` of a row of a file, ``folder/shard:line`` of a row of a folder."""
        line = self.lines[index]
        return f"{self.path}/{line}" if isinstance(line, str) else f"{self.path}:{line}"


def read_table(spec: DatasetSpec | str) -> Table:
    """Reads the whole dataset (in chunks) into a :class:`Table`, or raises :class:`UserInputError` saying where."""
    spec = DatasetSpec(str(spec)) if isinstance(spec, (str, Path)) else spec
    p = Path(spec.path)
    if p.is_dir():
        fmt, frame, lines = _read_folder(p, spec.file_format)
        if len(frame) == 0:
            raise UserInputError(f"{p}: the folder's {fmt} files have no records")
    elif not p.exists():
        raise UserInputError(f"{p}: no such file")
    else:
        fmt = spec.resolved_file_format()
        frame, lines = _READERS[fmt](p)
    if len(frame) == 0:
        raise UserInputError(f"{p}: the file has no records" + (" (only a header)" if fmt == "csv" and p.stat().st_size else ""))
    inverse = {file_col: ours for ours, file_col in spec.columns.items()}
    frame = frame.rename(columns=inverse)
    record_format, source = spec.record_format, ""
    if (record_format == "auto" and {"prompt", "completion"} <= set(frame.columns)
            and not {"instruction", "response", "messages", "conversations"} & set(frame.columns)):
        (frame, record_format), source = _prompt_completion(frame), "prompt-completion"
    if record_format == "auto":
        record_format = ("chat" if "messages" in frame.columns else "sharegpt" if "conversations" in frame.columns
                         else "instruction")
    missing = [c for c in REQUIRED[record_format] if c not in frame.columns]
    if missing:
        mapped = {c: spec.columns.get(c, c) for c in missing}
        raise UserInputError(
            f"{p}: missing column(s) {[mapped[c] for c in missing]} for {record_format} records; "
            f"the file has {sorted(map(str, frame.columns))} (map names with columns=...)"
            + ("; its conversations look like ShareGPT records: record_format sharegpt (or auto) reads them"
               if record_format == "chat" and "conversations" in frame.columns else "")
        )
    kept = [c for c in spec.keep if c in frame.columns and c not in CANONICAL[record_format]]
    frame = frame[[c for c in CANONICAL[record_format] if c in frame.columns] + kept].reset_index(drop=True)
    if record_format == "chat" and _sharegpt_items(frame["messages"]):  # e.g. columns={"messages": "conversations"}
        frame, record_format = frame.rename(columns={"messages": "conversations"}), "sharegpt"
    if record_format == "sharegpt":
        import pandas as pd

        systems = frame["system"] if "system" in frame.columns else [None] * len(frame)
        messages = [sharegpt_messages(c, s) for c, s in zip(frame["conversations"], systems)]
        converted = pd.DataFrame({"messages": pd.Series(messages, dtype=object), **{c: frame[c] for c in kept}})
        return Table(str(p), fmt, "chat", converted, lines, "sharegpt")
    if record_format == "chat":
        import pandas as pd

        frame["messages"] = pd.Series([text_content(m) for m in frame["messages"]], index=frame.index, dtype=object)
    return Table(str(p), fmt, record_format, frame, lines, source)


def _prompt_completion(frame):
    """TRL's prompt-completion records as ours: strings as instruction records, message lists (its conversational
    form) as chat records of the prompt's messages and then the completion's."""
    import pandas as pd

    def items(v):
        return v.tolist() if hasattr(v, "tolist") else v

    if not isinstance(items(frame["prompt"].iloc[0]), (list, tuple)):
        return frame.rename(columns={"prompt": "instruction", "completion": "response"}), "instruction"
    joined = [[*items(q), *items(a)] if isinstance(items(q), (list, tuple)) and isinstance(items(a), (list, tuple)) else q
              for q, a in zip(frame["prompt"], frame["completion"])]  # anything else as it was, for validation
    return pd.DataFrame({"messages": pd.Series(joined, dtype=object)}), "chat"


def text_content(messages):
    """OpenAI-style content parts (``"content": [{"type": "text", "text": ...}, ...]``) joined into one string, in each
    message whose parts are all text; anything else (an image part, a conversation that is not a list) as it was, for
    validation to report at its line."""
    items = messages.tolist() if hasattr(messages, "tolist") else messages
    if not isinstance(items, (list, tuple)):
        return messages
    out, changed = [], False
    for m in items:
        parts = m.get("content") if isinstance(m, dict) else None
        parts = parts.tolist() if hasattr(parts, "tolist") else parts
        if isinstance(parts, (list, tuple)) and parts and all(
                isinstance(x, dict) and x.get("type") == "text" and isinstance(x.get("text"), str) for x in parts):
            m, changed = {**m, "content": "".join(x["text"] for x in parts)}, True
        out.append(m)
    return out if changed else messages


def _sharegpt_items(column) -> bool:
    """Whether the first row's messages are ShareGPT's ``{from, value}`` objects rather than ``{role, content}``."""
    first = column.iloc[0] if len(column) else None
    first = first.tolist() if hasattr(first, "tolist") else first
    item = first[0] if isinstance(first, (list, tuple)) and first else None
    return isinstance(item, dict) and "from" in item and "value" in item and "role" not in item


def sharegpt_messages(conversation, system=None):
    """One ShareGPT conversation as chat messages (see the module docstring). Anything that is not a list of
    ``{from, value}`` objects is passed on as it is, for validation to report at its line."""
    items = conversation.tolist() if hasattr(conversation, "tolist") else conversation
    if not isinstance(items, (list, tuple)):
        return conversation
    turns = [{"role": SHAREGPT_ROLES.get(m["from"], m["from"]), "content": m["value"]}
             if isinstance(m, dict) and isinstance(m.get("from"), str) and "value" in m and "role" not in m else m
             for m in items]
    if isinstance(system, str) and system.strip() and not (turns and isinstance(turns[0], dict)
                                                             and turns[0].get("role") == "system"):
        turns.insert(0, {"role": "system", "content": system})
    return turns


def _read_folder(p: Path, file_format: str):
    """The folder's data files read as one table: (format, frame, "shard:line" labels)."""
    import pandas as pd

    files = sorted(f for f in p.rglob("*") if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts))
    shards = [f for f in files if _SHARD_SUFFIXES.get(f.suffix.lower()) in ((file_format,) if file_format != "auto"
                                                                             else FILE_FORMATS)]
    if not shards:
        raise UserInputError(f"{p}: a folder with no {'/'.join(FILE_FORMATS) if file_format == 'auto' else file_format} "
                             f"files ({len(files)} other file(s)); pass a data file, or a folder of data shards")
    formats = sorted({_SUFFIXES[f.suffix.lower()] for f in shards})
    if len(formats) > 1:
        raise UserInputError(f"{p}: a folder of {' and '.join(formats)} files; pass file_format to read one of them, "
                             "or keep one format per folder")
    splits: dict[str, list[str]] = {}
    for f in shards:
        splits.setdefault(_split_of(f.relative_to(p)) or "no split name", []).append(f.relative_to(p).as_posix())
    if len(splits) > 1:
        named = "; ".join(f"{name}: {', '.join(paths[:2])}{' ...' if len(paths) > 2 else ''}"
                          for name, paths in sorted(splits.items()))
        raise UserInputError(f"{p}: the folder holds several splits ({named}); pass a folder with one split's files "
                             "(e.g. the train/ folder of a save_to_disk DatasetDict), not train and test data together")
    frames, lines = [], []
    for f in shards:
        frame, shard_lines = _READERS[formats[0]](f)
        rel = f.relative_to(p).as_posix()
        frames.append(frame)
        lines += [f"{rel}:{n}" for n in shard_lines]
    frames = [f for f in frames if len(f)]
    return formats[0], pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), lines


def _split_of(rel: Path) -> str | None:
    """The split a shard's path names, or None: a folder named for a split (``train/``, a save_to_disk DatasetDict's),
    the name before a Hugging Face shard suffix (``train_sft`` of ``train_sft-00000-of-00003.parquet``), a file named
    for a split (``train.jsonl``, ``test-000000000000.csv``)."""
    import re

    def keyword(part: str) -> str | None:
        m = re.match(r"([a-z]+)(?:$|[-_.\d])", part.lower())
        return _SPLITS.get(m.group(1)) if m else None

    for part in rel.parts[:-1]:
        if keyword(part):
            return keyword(part)
    shard = re.match(r"(.+?)-\d{5}-of-\d{5}$", rel.name.split(".")[0])
    if shard and shard.group(1).lower() != "data":  # save_to_disk names every split's shards data-N-of-M
        return shard.group(1).lower()
    return keyword(rel.name)


def _read_arrow(p: Path):
    import pandas as pd
    import pyarrow as pa

    try:
        with pa.memory_map(str(p)) as source:
            try:
                reader = pa.ipc.open_stream(source)
                batches = list(reader)
            except pa.ArrowInvalid:
                source.seek(0)
                reader = pa.ipc.open_file(source)
                batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
            frames = [b.to_pandas() for b in batches]
    except Exception as exc:  # pyarrow raises several types for corrupt or truncated files
        raise UserInputError(f"{p}: cannot read Arrow IPC ({type(exc).__name__}: {exc})") from None
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, list(range(1, len(frame) + 1))


def _read_jsonl(p: Path):
    import pandas as pd

    rows, lines = [], []
    with p.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserInputError(f"{p}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start} of the line)") from None
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
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame(), lines


def _read_csv(p: Path):
    import pandas as pd

    try:
        chunks = list(pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8-sig",
                                  chunksize=CHUNK_ROWS, on_bad_lines="error"))
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserInputError(f"{p}:{line}: not valid UTF-8 ({exc.reason})") from None
    except pd.errors.EmptyDataError:
        raise UserInputError(f"{p}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise UserInputError(f"{p}: malformed CSV ({exc})") from None
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    # line numbers of data rows (header is line 1); exact when no field spans lines
    return frame, list(range(2, len(frame) + 2))


def _read_parquet(p: Path):
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
        frames = [batch.to_pandas() for batch in pf.iter_batches(batch_size=CHUNK_ROWS)]
    except Exception as exc:  # pyarrow raises several types for corrupt or truncated files
        raise UserInputError(f"{p}: cannot read Parquet ({type(exc).__name__}: {exc})") from None
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, list(range(1, len(frame) + 1))


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet, "arrow": _read_arrow}


def instruction_pairs(table: Table) -> list[tuple[str, str]]:
    """``(prompt, response)`` per row; ``input``, when present and non-empty, follows the instruction."""
    if table.record_format != "instruction":
        raise UserInputError(f"{table.path}: expected instruction records, got {table.record_format} records")
    pairs = []
    has_input = "input" in table.frame.columns
    for i, row in enumerate(table.frame.itertuples(index=False)):
        instruction, response = row.instruction, row.response
        for name, value in (("instruction", instruction), ("response", response)):
            if not isinstance(value, str):
                raise UserInputError(f"{table.where(i)}: field {name!r} is missing or not a string")
        extra = getattr(row, "input", None) if has_input else None
        if isinstance(extra, str) and extra.strip():
            instruction = f"{instruction}\n{extra}"
        pairs.append((instruction, response))
    return pairs


def records(table: Table) -> list:
    """The rows as the prompt format takes them (:class:`kfp_llmops.prompts.PromptFormat`): an ``(instruction,
    response)`` pair per instruction record, a list of ``{"role", "content"}`` messages per chat record."""
    if table.record_format == "instruction":
        return instruction_pairs(table)
    return [chat_record(m, table.where(i)) for i, m in enumerate(table.frame["messages"])]


def chat_record(messages, where: str) -> list[dict]:
    """One chat record's messages, checked: a non-empty list of {role (system, user, assistant), content (str)}."""
    messages = list(messages) if hasattr(messages, "__len__") and not isinstance(messages, (str, dict)) else None
    if not messages:
        raise UserInputError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    turns = []
    for k, m in enumerate(messages):
        if not (hasattr(m, "get") and isinstance(m.get("content"), str) and m.get("role") in ("system", "user", "assistant")):
            raise UserInputError(f"{where}: message {k + 1} must have a role (system, user or assistant) and a "
                                 f"string content, got {dict(m) if hasattr(m, 'items') else m!r}"[:300])
        turns.append({"role": m["role"], "content": m["content"]})
    return turns


def iter_records(path: str | Path, chunk_rows: int = 50_000):
    """Streams a canonical JSONL file (what validate_dataset writes) as chunks of ``(records, locations)``, a chunk at
    a time in memory: the way to prepare a million rows in bounded memory."""
    p = Path(path)
    chunk, where = [], []
    with p.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise UserInputError(f"{p}:{number}: not a JSON record ({exc})") from None
            here = f"{p}:{number}"
            if isinstance(row, dict) and "messages" in row:
                chunk.append(chat_record(row["messages"], here))
            elif isinstance(row, dict) and isinstance(row.get("instruction"), str) and isinstance(row.get("response"), str):
                extra = row.get("input")
                instruction = f"{row['instruction']}\n{extra}" if isinstance(extra, str) and extra.strip() else row["instruction"]
                chunk.append((instruction, row["response"]))
            else:
                raise UserInputError(f"{here}: expected a chat record (messages) or an instruction record "
                                     "(instruction, response strings)")
            where.append(here)
            if len(chunk) >= chunk_rows:
                yield chunk, where
                chunk, where = [], []
    if chunk:
        yield chunk, where


def locations(table: Table) -> list[str]:
    """``path:line`` of each row, for errors."""
    return [table.where(i) for i in range(len(table.lines))]


def read_jsonl(path: str | Path, keep: tuple[str, ...] = ()) -> Table:
    """Reads a dataset as the pipeline's steps get it: JSONL (what validate_dataset writes, at an artifact path with no
    suffix) unless the suffix says CSV or Parquet (an eval set imported as it is), a folder by its shards. ``keep``:
    fields kept beside the canonical columns, where the records have them."""
    p = Path(path)
    fmt = "auto" if p.is_dir() or p.suffix.lower() in _SUFFIXES else "jsonl"
    return read_table(DatasetSpec(str(path), file_format=fmt, keep=tuple(keep)))


def write_canonical_jsonl(table: Table, path: str | Path) -> None:
    """Writes the table's canonical columns as JSONL (one record a line, missing values left out)."""
    columns = list(table.frame.columns)
    with Path(path).open("w", encoding="utf-8") as fh:
        for values in table.frame.itertuples(index=False, name=None):  # a row at a time: no million dicts at once
            clean = {k: _plain(v) for k, v in zip(columns, values) if not _missing(v)}
            fh.write(json.dumps(clean, ensure_ascii=False) + "\n")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value
