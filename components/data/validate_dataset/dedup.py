"""Exact and near duplicates: MinHash signatures over word shingles and LSH (``datasketch``)."""

from __future__ import annotations

import hashlib

from kfp_llmops.text import words


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


def near_duplicates(texts: list[str], *, threshold: float, num_perm: int = 128, shingle_size: int = 3, seed: int = 1,
                    chunk_rows: int = 20_000, workers: int | None = None) -> dict[int, int]:
    """``{row: earlier row}`` for rows whose Jaccard similarity (word shingles) with an earlier row that is not itself
    flagged is >= threshold: MinHash signatures and LSH bands (datasketch's, with its band split for the threshold).

    The result is what querying and filling datasketch's ``MinHashLSH`` row by row gives, in bounded memory: its
    in-memory index costs about 2 KB a row (a million rows: gigabytes), so signatures are computed a chunk at a time and
    kept only as one 64-bit key per band and row (8 bands at 0.85: 64 MB a million rows); only rows that share a band key with
    another row go through the row-by-row pass, and their shingles are made again for the candidate checks."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from kfp_llmops.parallel import chunked, ordered_map

    ranges = MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges
    n = len(texts)
    mix = np.random.default_rng(seed).integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    keys = np.empty((len(ranges), n), dtype=np.uint64)

    def band_keys(chunk: list[str]):  # a chunk's MinHash signatures, each band's values mixed into one key
        sets = [list(shingles(t, shingle_size)) for t in chunk]
        values = np.stack([m.hashvalues for m in MinHash.bulk(sets, num_perm=num_perm, seed=seed)]).astype(np.uint64)
        return np.stack([(values[:, start:end] * mix[start:end]).sum(axis=1, dtype=np.uint64) for start, end in ranges])

    lo = 0
    for part in ordered_map(band_keys, chunked(texts, chunk_rows), workers if n > chunk_rows else 1):
        keys[:, lo : lo + part.shape[1]] = part
        lo += part.shape[1]
    shared = np.zeros(n, dtype=bool)
    for band in keys:
        _, inverse, counts = np.unique(band, return_inverse=True, return_counts=True)
        shared |= counts[inverse] > 1
    index: dict[tuple[int, int], list[int]] = {}
    inserted: dict[int, set[bytes]] = {}
    out: dict[int, int] = {}
    for i in np.flatnonzero(shared).tolist():
        row_keys = [(b, int(keys[b, i])) for b in range(len(ranges))]
        mine = shingles(texts[i], shingle_size)
        candidates = {c for k in row_keys for c in index.get(k, ())}
        matches = [c for c in candidates if _jaccard(mine, inserted[c]) >= threshold]
        if matches:
            out[i] = min(matches)
        else:
            inserted[i] = mine
            for k in row_keys:
                index.setdefault(k, []).append(i)
    return out


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
