"""Screening of training rows beyond the GX suite: PII and secrets, exact and near duplicates, eval-set
contamination, and drift against a reference dataset. Each check is configurable and reported; its action decides
what happens to the rows it flags: ``fail`` (a critical failure), ``drop`` or ``mask`` (fixed, reported) or ``report``."""

from __future__ import annotations

from dataclasses import dataclass

from kfp_llmops import drift
from kfp_llmops.components.data.validate_dataset import contamination, dedup, pii
from kfp_llmops.configs import PiiConfig, ScreeningConfig
from kfp_llmops.datasets import Table

@dataclass
class Flag:
    """Rows one screening check flagged: ``rows`` maps a row index to what to show for it (never the raw PII)."""

    check: str
    field: str
    action: str
    rows: dict[int, str]


@dataclass
class Screened:
    flags: list[Flag]
    drop: set[int]
    masked: dict[int, int]  # row -> number of masked findings
    drift: dict[str, float]
    drift_threshold: float
    drift_action: str


def text_fields(table: Table) -> dict[str, list[str]]:
    """The text of each row per field; chat rows give the contents of their messages, one per line."""
    frame = table.frame
    if table.record_format == "chat":
        return {"messages": [_chat_text(m) for m in frame["messages"]]}
    return {c: [v if isinstance(v, str) else "" for v in frame[c]] for c in ("instruction", "input", "response") if c in frame.columns}


def _chat_text(messages) -> str:
    try:
        return "\n".join(str(m.get("content", "")) for m in list(messages))
    except (TypeError, AttributeError):
        return ""


def screen(table: Table, cfg: ScreeningConfig, eval_table: Table | None = None, reference: Table | None = None,
           workers: int | None = None) -> Screened:
    """``workers`` processes (default: this process's CPUs, at most 8) scan for PII and sign rows for near duplicates."""
    from kfp_llmops.parallel import chunked, ordered_map

    fields = text_fields(table)
    flags: list[Flag] = []
    drop: set[int] = set()
    masked: dict[int, int] = {}
    if cfg.pii.enabled:
        by_kind: dict[str, dict[int, str]] = {k: {} for k in cfg.pii.kinds}
        for name, texts in fields.items():
            scans = (f for part in ordered_map(lambda chunk: [pii.find_pii(t, cfg.pii.kinds, cfg.pii.phone_region)
                                                              for t in chunk], chunked(texts, 20_000),
                                               workers if len(texts) > 20_000 else 1) for f in part)
            for i, (text, found) in enumerate(zip(texts, scans)):
                if not found:
                    continue
                masked_text = pii.mask(text, found)
                for f in found:
                    at = masked_text.find(f"[{f.kind.upper()}]")
                    by_kind[f.kind].setdefault(i, f"{name}: {_around(masked_text, at)}")
                if cfg.pii.action == "mask":
                    masked[i] = masked.get(i, 0) + len(found)
                    texts[i] = masked_text
                    _mask_row(table, name, i, masked_text, cfg.pii)
        for kind, rows in by_kind.items():
            flags.append(Flag(f"screen_pii_{kind}", ",".join(fields), cfg.pii.action, rows))
            if cfg.pii.action == "drop":
                drop |= set(rows)
    joined = ["\n".join(parts) for parts in zip(*fields.values())]
    if cfg.duplicates.enabled:
        exact = dedup.exact_duplicates(joined)
        near = dedup.near_duplicates(joined, threshold=cfg.duplicates.threshold, num_perm=cfg.duplicates.num_perm,
                                     shingle_size=cfg.duplicates.shingle_size, workers=workers)
        near = {i: j for i, j in near.items() if i not in exact}
        for check, rows in (("screen_exact_duplicates", exact), ("screen_near_duplicates", near)):
            flags.append(Flag(check, "all text", cfg.duplicates.action,
                              {i: f"same as line {table.line_of(j)}" for i, j in rows.items()}))
            if cfg.duplicates.action == "drop":
                drop |= set(rows)
    if cfg.contamination.enabled and eval_table is not None:
        eval_joined = ["\n".join(parts) for parts in zip(*text_fields(eval_table).values())]
        hits = contamination.contaminated_rows(joined, eval_joined, cfg.contamination.ngram)
        flags.append(Flag("screen_eval_contamination", "all text", cfg.contamination.action,
                          {i: f"overlaps eval line {eval_table.line_of(j)}" for i, j in hits.items()}))
        if cfg.contamination.action == "drop":
            drop |= set(hits)
    scores: dict[str, float] = {}
    if cfg.drift.enabled and reference is not None:
        kept = {name: [t for i, t in enumerate(texts) if i not in drop] for name, texts in fields.items()}
        scores = drift.drift_report(text_fields(reference), kept)
    return Screened(flags, drop, masked, scores, cfg.drift.threshold, cfg.drift.action)


def _mask_row(table: Table, name: str, i: int, masked_text: str, cfg: PiiConfig) -> None:
    frame = table.frame
    if name != "messages":
        frame.at[i, name] = masked_text
        return
    messages = [dict(m) for m in list(frame.at[i, "messages"])]
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = pii.mask(content, pii.find_pii(content, cfg.kinds, cfg.phone_region))
    frame.at[i, "messages"] = messages


def _around(text: str, start: int, width: int = 40) -> str:
    lo = max(0, start - width // 2)
    snippet = text[lo : lo + width]
    return ("..." if lo else "") + snippet + ("..." if lo + width < len(text) else "")
