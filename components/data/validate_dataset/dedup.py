"""Exact and near duplicates: MinHash signatures over word shingles and LSH (``datasketch``)."""

from __future__ import annotations

import hashlib
import re

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(text: str, size: int) -> set[bytes]:
    w = words(text)
    if len(w) < size:
        return {" ".join(w).encode()}
    return {" ".join(w[i : i + size]).encode() for i in range(len(w) - size + 1)}


def exact_duplicates(texts: list[str]) -> dict[int, int]:
    """``{row: first row with the same normalized text}`` for every row after the first of its kind."""
    first: dict[str, int] = {}
    out = {}
    for i, t in enumerate(texts):
        key = hashlib.sha256(" ".join(words(t)).encode()).hexdigest()
        if key in first:
            out[i] = first[key]
        else:
            first[key] = i
    return out


def near_duplicates(texts: list[str], *, threshold: float, num_perm: int = 128, shingle_size: int = 3, seed: int = 1) -> dict[int, int]:
    """``{row: earlier row}`` for rows whose estimated Jaccard similarity with an earlier row is >= threshold."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sets = [shingles(t, shingle_size) for t in texts]
    signatures = MinHash.bulk([list(s) for s in sets], num_perm=num_perm, seed=seed)
    out: dict[int, int] = {}
    for i, sig in enumerate(signatures):
        candidates = [int(c) for c in lsh.query(sig)]
        matches = [c for c in candidates if _jaccard(sets[i], sets[c]) >= threshold]
        if matches:
            out[i] = min(matches)
        else:
            lsh.insert(str(i), sig)
    return out


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
