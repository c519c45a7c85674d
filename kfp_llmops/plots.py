"""Report plots, drawn with matplotlib and embedded as inline SVG: a self-contained HTML artifact that the Kubeflow
UI and Vertex AI show without JavaScript or network access. Never imports kfp."""

from __future__ import annotations

import io
import math

PALETTE = {"candidate": "#0969da", "canary": "#0969da", "stable": "#6e7781", "validation": "#cf222e", "lr": "#1a7f37"}


def _figure(rows: int = 1, cols: int = 1, size=(7.5, 3.2)):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [a for row in axes for a in row]


def to_svg(fig) -> str:
    """The figure as an ``<svg>`` element (no XML prolog, so it can sit inside HTML)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kfp-llmops"}):  # text stays text; stable ids
        fig.savefig(buf, format="svg", metadata={"Date": None})  # no timestamp: the same data gives the same bytes
    text = buf.getvalue()
    return text[text.index("<svg"):]


def training_curves(losses: list[float], learning_rates: list[float] | None = None,
                    validation: list[tuple[int, float]] | None = None, final_validation: float | None = None) -> str:
    """Training loss per step, validation loss where it was measured, and the learning rate on a second axis."""
    fig, (ax,) = _figure()
    steps = list(range(1, len(losses) + 1))
    ax.plot(steps, losses, color=PALETTE["candidate"], linewidth=1.2, label="training loss")
    if validation:
        ax.plot([s for s, _ in validation], [v for _, v in validation], "o-", color=PALETTE["validation"],
                label="validation loss")
    elif final_validation is not None and math.isfinite(final_validation):
        ax.axhline(final_validation, color=PALETTE["validation"], linestyle="--",
                   label=f"validation loss (end) {final_validation:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if learning_rates:
        ax2 = ax.twinx()
        ax2.plot(steps[: len(learning_rates)], learning_rates, color=PALETTE["lr"], linewidth=1, alpha=0.8,
                 label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    ax.set_title("LoRA training")
    return to_svg(fig)


def metric_deltas(comparisons: dict, metrics=("exact_match", "rouge_l", "sentence_bleu", "bleu")) -> str:
    """Per metric, candidate minus each baseline as a bar with its 95 % interval; zero marked."""
    metrics = [m for m in metrics if any(m in c for c in comparisons.values())]
    baselines = list(comparisons)
    fig, axes = _figure(1, len(metrics), size=(2.4 * len(metrics) + 1, 2.8))
    colors = ["#0969da", "#8250df", "#bf8700", "#1a7f37"]
    for ax, metric in zip(axes, metrics):
        for i, name in enumerate(baselines):
            m = comparisons[name].get(metric)
            if not m:
                continue
            err = [[m["delta"] - m["ci_low"]], [m["ci_high"] - m["delta"]]]
            ax.bar(i, m["delta"], yerr=err, capsize=4, color=colors[i % len(colors)], alpha=0.85)
        ax.axhline(0, color="#24292f", linewidth=0.8)
        ax.set_xticks(range(len(baselines)), [f"vs {b}" for b in baselines], fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("candidate minus baseline, 95 % interval", fontsize=10)
    return to_svg(fig)


def slice_scores(models: dict[str, dict], metric: str) -> str:
    """Per slice field, ``metric`` of each model on each slice with its 95 % interval (``models``: ``{name: {field:
    {value: scores}}}``, the evaluation's per-model slices)."""
    fields = list(next(iter(models.values())))
    fig, axes = _figure(1, len(fields), size=(3.2 * len(fields) + 1, 3.0))
    colors = ["#0969da", "#8250df", "#bf8700", "#1a7f37"]
    for ax, field in zip(axes, fields):
        values = list(next(iter(models.values()))[field])
        width = 0.8 / len(models)
        for i, (name, slices) in enumerate(models.items()):
            xs = [k + (i - (len(models) - 1) / 2) * width for k in range(len(values))]
            ys = [slices[field][v][metric] for v in values]
            err = [[y - slices[field][v][f"{metric}_ci_low"] for v, y in zip(values, ys)],
                   [slices[field][v][f"{metric}_ci_high"] - y for v, y in zip(values, ys)]]
            ax.bar(xs, ys, width=width, yerr=err, capsize=3, color=colors[i % len(colors)], alpha=0.85, label=name)
        ax.set_xticks(range(len(values)), values, fontsize=8)
        ax.set_title(field, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"{metric} per slice, 95 % interval", fontsize=10)
    return to_svg(fig)


def rollout_steps(steps: list[dict]) -> str:
    """Canary traffic share per step, and p95 latency of canary and stable per step."""
    fig, (share, latency) = _figure(1, 2, size=(8, 3))
    x = list(range(1, len(steps) + 1))
    share.bar(x, [s["percent"] for s in steps],
              color=[PALETTE["candidate"] if s.get("passed", True) else PALETTE["validation"] for s in steps])
    share.set_ylim(0, 100)
    ticks = [s.get("label") or f"{s['percent']}%" for s in steps]
    share.set_xticks(x, ticks)
    share.set_xlabel("step (red: failed analysis)")
    share.set_ylabel("canary traffic %")
    share.grid(axis="y", alpha=0.3)
    for key, label in (("canary_p95_ms", "canary"), ("stable_p95_ms", "stable")):
        values = [s.get(key) for s in steps]
        if any(v is not None for v in values):
            latency.plot(x, [float("nan") if v is None else v for v in values], "o-", color=PALETTE[label], label=label)
    latency.set_xticks(x, ticks)
    latency.set_xlabel("step")
    latency.set_ylabel("p95 latency (ms)")
    latency.grid(alpha=0.3)
    latency.legend(fontsize=8)
    fig.suptitle("canary rollout", fontsize=10)
    return to_svg(fig)


def overlaid_losses(curves: dict[str, list[float]]) -> str:
    """Several runs' training loss per step on one axis (run comparison)."""
    fig, (ax,) = _figure()
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, linewidth=1.2, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Training loss by run")
    return to_svg(fig)


def distributions(panels: dict[str, tuple[list[float], list[float]]]) -> str:
    """One panel per feature: the training data's distribution and the served traffic's, as overlaid density
    histograms on the same bins (monitoring)."""
    import numpy as np

    fig, axes = _figure(1, len(panels), size=(3.2 * len(panels) + 0.8, 2.8))
    for ax, (name, (reference, served)) in zip(axes, panels.items()):
        values = np.asarray(list(reference) + list(served), float)
        edges = np.histogram_bin_edges(values, bins=min(30, max(5, len(np.unique(values))))) if values.size else 10
        ax.hist(reference, bins=edges, density=True, alpha=0.55, color=PALETTE["stable"], label="training data")
        ax.hist(served, bins=edges, density=True, alpha=0.55, color=PALETTE["candidate"], label="served")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("training data vs served traffic", fontsize=10)
    return to_svg(fig)
