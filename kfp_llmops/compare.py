"""Runs side by side: ``kfp-llmops compare`` over kfp.local run folders, registry versions or trained adapters, as one
HTML page (the training configs where they differ, metrics with their 95 % intervals, the loss curves overlaid, the
gate decisions) and a Markdown table. lora-sweep's ``select-best-adapter`` writes the same page. No kfp here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from kfp_llmops.errors import UserInputError

METRICS = ("exact_match", "rouge_l", "bleu", "perplexity", "latency_p95_ms", "attack_success_rate")
TRAINING = ("validation_loss", "train_loss_final", "steps", "tokens_seen", "trainable_parameters")


@dataclass
class RunRecord:
    name: str
    config: dict = field(default_factory=dict)  # the training config
    metrics: dict = field(default_factory=dict)  # evaluate-model's flat metrics (candidate.*, base.*, ...) and training
    history: dict = field(default_factory=dict)  # loss / learning_rate / validation per step
    gate: dict | None = None  # {"passed": bool, "reasons": [...]}


def _adapter_record(name: str, adapter_dir: Path, metadata: dict) -> RunRecord:
    from kfp_llmops.history import read_history

    config_file = adapter_dir / "training_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    history = read_history(adapter_dir) if any((adapter_dir / f).is_file() for f in ("history.json", "losses.json")) else {}
    metrics = {k: metadata[k] for k in TRAINING if isinstance(metadata.get(k), (int, float))}
    return RunRecord(name, config, metrics, history)


def from_adapter(adapter_dir: str | Path, metadata: dict | None = None, name: str = "") -> RunRecord:
    """A trained adapter folder (train_lora's output) and its artifact metadata."""
    p = Path(adapter_dir)
    return _adapter_record(name or p.name, p, dict(metadata or {}))


def from_run_dir(run_dir: str | Path) -> RunRecord:
    """A kfp.local run folder of finetune-and-rollout (or eval-only): its adapter, evaluation and gate."""
    root = Path(run_dir)
    outputs = {f.parent.name: json.loads(f.read_text(encoding="utf-8")) for f in root.glob("*/executor_output.json")}
    if not outputs:
        raise UserInputError(f"{root}: not a kfp.local run folder (no */executor_output.json)")

    def artifact(task: str, name: str) -> dict | None:
        found = outputs.get(task, {}).get("artifacts", {}).get(name, {}).get("artifacts", [])
        return found[0] if found else None

    adapter = artifact("train-lora", "adapter")
    record = (_adapter_record(root.name, Path(adapter["uri"]), adapter.get("metadata", {})) if adapter
              else RunRecord(root.name))
    evaluation = artifact("evaluate-model", "metrics")
    if evaluation:
        record.metrics.update({k: v for k, v in evaluation["metadata"].items() if isinstance(v, (int, float))})
    decision = artifact("regression-gate", "decision")
    if decision:
        record.gate = {"passed": bool(decision["metadata"].get("passed")), "reasons": list(decision["metadata"].get("reasons", []))}
    return record


def from_registry(registry, model: str, version: str) -> RunRecord:
    """A registered version: its evaluation tags (``eval.*``); configs and curves stay with the run that made it."""
    v = registry.get_version(model, str(version))
    if v is None:
        raise UserInputError(f"no version {version} of {model!r} in {registry.uri}")
    metrics = {}
    for key, value in v.tags.items():
        if key.startswith("eval."):
            try:
                metrics[key.removeprefix("eval.")] = float(value)
            except ValueError:
                pass
    gate = {"passed": v.tags.get("gate") == "passed", "reasons": []} if "gate" in v.tags else None
    return RunRecord(f"{model} v{version}", {"base_model": v.tags.get("base_model", "")}, metrics, {}, gate)


def config_diff(records: list[RunRecord]) -> dict[str, list]:
    """The config fields whose values differ between the runs (a missing field shows as None)."""
    keys = sorted({k for r in records for k in r.config})
    rows = {k: [r.config.get(k) for r in records] for k in keys}
    return {k: v for k, v in rows.items() if len({json.dumps(x, sort_keys=True, default=str) for x in v}) > 1}


def _metric_rows(records: list[RunRecord]) -> list[tuple[str, list[str]]]:
    rows = []
    for metric in METRICS:
        if not any(f"candidate.{metric}" in r.metrics for r in records):
            continue
        cells = []
        for r in records:
            value = r.metrics.get(f"candidate.{metric}")
            text = "" if value is None else f"{value:.4f}"
            for baseline in ("production", "base"):
                delta = r.metrics.get(f"{baseline}.delta.{metric}")
                if delta is not None:
                    low, high = r.metrics.get(f"{baseline}.delta_ci_low.{metric}"), r.metrics.get(f"{baseline}.delta_ci_high.{metric}")
                    ci = f" [{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else ""
                    text += f" (vs {baseline} {delta:+.4f}{ci})"
                    break
            cells.append(text)
        rows.append((metric, cells))
    for metric in TRAINING:
        if any(metric in r.metrics for r in records):
            cells = [("" if r.metrics.get(metric) is None else f"{r.metrics[metric]:.4g}") for r in records]
            rows.append((metric, cells))
    return rows


def _gate_cell(r: RunRecord) -> str:
    return "" if r.gate is None else ("PROMOTE" if r.gate["passed"] else "BLOCKED")


def compare_markdown(records: list[RunRecord]) -> str:
    head = "| | " + " | ".join(r.name for r in records) + " |"
    lines = [head, "|---|" + "---|" * len(records)]
    lines += [f"| {m} | " + " | ".join(cells) + " |" for m, cells in _metric_rows(records)]
    lines += [f"| config.{k} | " + " | ".join(json.dumps(v) for v in values) + " |" for k, values in config_diff(records).items()]
    if any(r.gate for r in records):
        lines.append("| gate | " + " | ".join(_gate_cell(r) for r in records) + " |")
    return "\n".join(lines) + "\n"


def compare_html(records: list[RunRecord], title: str = "Run comparison") -> str:
    if not records:
        raise UserInputError("nothing to compare: give run folders, adapters or registry versions")
    from kfp_llmops.plots import overlaid_losses

    def table(rows: list[tuple[str, list[str]]]) -> str:
        head = "<tr><th></th>" + "".join(f"<th>{escape(r.name)}</th>" for r in records) + "</tr>"
        body = "".join("<tr><th>" + escape(name) + "</th>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
                       for name, cells in rows)
        return f"<table>{head}{body}</table>"

    diff = [(k, [json.dumps(v) for v in values]) for k, values in config_diff(records).items()]
    curves = {r.name: r.history.get("loss", []) for r in records if r.history.get("loss")}
    gates = "".join(f"<li><b>{escape(r.name)}</b>: {_gate_cell(r)}<ul>" + "".join(f"<li>{escape(x)}</li>" for x in r.gate["reasons"])
                    + "</ul></li>" for r in records if r.gate)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
figure{{margin:0}} figure svg{{max-width:100%;height:auto}}</style></head><body>
<h1>{escape(title)}</h1>
<p>{len(records)} runs: {escape(", ".join(r.name for r in records))}</p>
<h2>Metrics</h2>{table(_metric_rows(records)) if _metric_rows(records) else "<p>no metrics</p>"}
<h2>Training config (fields that differ)</h2>{table(diff) if diff else "<p>the same config</p>"}
<h2>Loss curves</h2>{f'<figure id="loss-curves">{overlaid_losses(curves)}</figure>' if curves else "<p>no training history</p>"}
<h2>Gate decisions</h2>{f"<ul>{gates}</ul>" if gates else "<p>no gate in these runs</p>"}
</body></html>
"""
