"""Chunks of CPU-bound work (chat-template rendering, PII scans, MinHash signatures) on the step's CPUs, in order.

Worker processes are forked after the function is set, so it (a closure over a tokenizer, say) is inherited rather
than pickled; only the chunks and their results cross processes, at most ``workers + 1`` chunks at a time, so memory
stays bounded however long the input. Where fork is missing, or one CPU is all there is, the work runs here. No kfp.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable, Iterable, Iterator

_FN: Callable | None = None  # the function of the pool being forked


def cpus(limit: int = 8, cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The CPUs this process may use, at most ``limit``: its CPU set, and a pod's CPU limit (the cgroup v2 quota a
    Kubernetes ``resources.limits.cpu`` sets) where there is one."""
    import math

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = open(cpu_max, encoding="ascii").read().split()[:2]
        if quota != "max":
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, min(limit, n))


def _call(chunk):
    return _FN(chunk)


def ordered_map(fn: Callable, chunks: Iterable, workers: int | None = None) -> Iterator:
    """``fn(chunk)`` for each chunk, in the chunks' order; an exception in a worker is raised here, as it was."""
    global _FN
    import multiprocessing

    workers = cpus() if workers is None else workers
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in chunks:
            yield fn(chunk)
        return
    from concurrent.futures import ProcessPoolExecutor

    _FN = fn
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_call, chunk))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
