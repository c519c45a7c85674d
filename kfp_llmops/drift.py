"""Drift against a reference dataset (the last production dataset, or the traffic a monitor compares with its
training data): the Population Stability Index per feature. Never imports kfp.

Numeric features (lengths) are binned at the reference's deciles; word frequencies use the reference's most common
words plus one bucket for the rest. PSI < 0.1 is commonly read as no drift, 0.1-0.2 as moderate, > 0.2 as significant.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from kfp_llmops.text import words

_EPS = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected / max(expected.sum(), 1), _EPS, None)
    a = np.clip(actual / max(actual.sum(), 1), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([reference.min() - 0.5, reference.max() + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    return psi(np.histogram(reference, edges)[0].astype(float), np.histogram(current, edges)[0].astype(float))


def word_psi(reference_texts: list[str], current_texts: list[str], top: int = 1000) -> float:
    ref = Counter(w for t in reference_texts for w in words(t))
    cur = Counter(w for t in current_texts for w in words(t))
    vocab = [w for w, _ in ref.most_common(top)]
    known = set(vocab)

    def dist(c: Counter) -> np.ndarray:
        return np.array([c[w] for w in vocab] + [sum(v for k, v in c.items() if k not in known)], dtype=float)

    return psi(dist(ref), dist(cur))


def drift_report(reference: dict[str, list[str]], current: dict[str, list[str]]) -> dict[str, float]:
    """PSI for each field's length in characters and words, and for the word distribution of all fields."""
    out = {}
    for field in sorted(set(reference) & set(current)):
        for name, fn in (("chars", len), ("words", lambda t: len(words(t)))):
            r = np.array([fn(t) for t in reference[field]], dtype=float)
            c = np.array([fn(t) for t in current[field]], dtype=float)
            out[f"{field}.{name}"] = numeric_psi(r, c)
    all_ref = [t for f in sorted(reference) for t in reference[f]]
    all_cur = [t for f in sorted(current) for t in current[f]]
    out["word_frequencies"] = word_psi(all_ref, all_cur)
    return out
