"""Eval-set contamination: word n-gram overlap between training rows and the evaluation set.

A text shorter than ``n`` words counts as one n-gram of its own length, so a short eval example copied into the
training data as a whole row is caught too; 13-grams by default, as in the GPT-3 contamination study. A short eval
example embedded in a longer training row is not caught (that would flag every row sharing a few common words).
"""

from __future__ import annotations

from kfp_llmops.text import words


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    if len(w) < n:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def contaminated_rows(train_texts: list[str], eval_texts: list[str], n: int = 13) -> dict[int, int]:
    """``{training row: eval row}`` for training rows that share an n-gram with the eval set."""
    index: dict[tuple[str, ...], int] = {}
    for j, t in enumerate(eval_texts):
        for g in ngrams(t, n):
            index.setdefault(g, j)
    out = {}
    for i, t in enumerate(train_texts):
        hits = [index[g] for g in ngrams(t, n) if g in index]
        if hits:
            out[i] = min(hits)
    return out
