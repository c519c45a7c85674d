"""The benchmark result format shared by every benchmark: one JSON object per file under build/bench/.

``{"name", "metric", "unit", "ours", "baseline", "baseline_name", "ratio", "goal", "details"}``, with ``ratio``
oriented so that higher is better for us, and a table of all results printed at the end of ``make bench``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT = Path(os.environ.get("KFP_LLMOPS_BENCH_OUT") or Path(__file__).resolve().parent.parent / "build" / "bench")


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_alternating(ours, theirs, repeats: int) -> tuple[float, float]:
    """The fastest of ``repeats`` timings of each, run in turns (ours, theirs, ours...), so that a slow spell of the
    machine falls on both sides alike."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def lora_training_flops(model, lengths) -> float:
    """The model FLOPs of one training pass (forward and backward) over documents of ``lengths`` tokens, each attending
    only to itself (causal), for MFU. Per token, each ``Linear`` costs 2 FLOPs per weight forward and 2 for the input
    gradient, plus 2 for the weight gradient where it trains: 4 per frozen base weight and 6 per LoRA adapter weight
    (6 per weight in full fine-tuning); embeddings are lookups, no FLOPs. Attention per layer and document of L tokens:
    QK^T and PV over its L(L+1)/2 causal pairs, 2 FLOPs per query-head dimension each, forward, and twice that backward:
    6 * heads * head_dim * L(L+1). No recomputation (activation checkpointing would add a forward)."""
    import torch

    tokens = sum(lengths)
    linear = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):  # in x out, also for packed 4-bit weights
            linear += (6 if module.weight.requires_grad else 4) * module.in_features * module.out_features
    config = model.config
    heads = config.num_attention_heads
    width = heads * (getattr(config, "head_dim", None) or config.hidden_size // heads)
    attention = 6 * width * config.num_hidden_layers * sum(n * (n + 1) for n in lengths)
    return linear * tokens + attention


def write_result(name: str, *, metric: str, unit: str, ours: float, baseline: float, baseline_name: str,
                 higher_is_better: bool, goal: str, details: dict) -> dict:
    ratio = ours / baseline if higher_is_better else baseline / ours
    result = {
        "name": name, "metric": metric, "unit": unit, "ours": ours, "baseline": baseline,
        "baseline_name": baseline_name, "ratio": ratio, "goal": goal,
        "details": {**details, "machine": f"{platform.machine()}, {platform.python_version()}"},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def table() -> str:
    rows = [r for r in (json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))) if "metric" in r]  # not scale.json
    lines = [f"{'benchmark':<40} {'metric':<36} {'ours':>10} {'baseline':>10} {'ratio':>7}  goal",
             "-" * 124]
    for r in rows:
        lines.append(f"{r['name']:<40} {r['metric']:<36} {r['ours']:>10.4g} {r['baseline']:>10.4g} {r['ratio']:>7.3f}  {r['goal']}")
    return "\n".join(lines)
