"""``kfp-llmops evaluate``: evaluate an adapter against baselines and gate it, on the evaluate step's own path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kfp_llmops.cli.arguments import json_arg, key_value
from kfp_llmops.errors import UserInputError


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate an adapter against baselines and gate it: exit 0 promote, 1 blocked, 2 bad input")
    p.add_argument("--base-model", required=True, help="the base model: a hub id (org/name) or a local folder")
    p.add_argument("--adapter", required=True, help="the LoRA adapter folder")
    p.add_argument("--eval-data", required=True, help="held-out JSONL")
    p.add_argument("--baseline", action="append", metavar="NAME=MODEL", help="another baseline, e.g. production=/models/prod")
    p.add_argument("--eval-config", help="EvalConfig overrides (JSON or a JSON file)")
    p.add_argument("--gate-config", help="GateConfig overrides (JSON or a JSON file)")
    p.add_argument("--out", help="write report.json, examples.jsonl, report.html and metrics.json here")
    p.set_defaults(func=run)


def run(args) -> int:
    """Exit 0: the gate promotes; 1: it blocks; 2: bad input (missing model, empty eval set, bad config...)."""
    from kfp_llmops.handoff import write_results
    from kfp_llmops.components.evaluation.evaluate_model import core
    from kfp_llmops.components.evaluation.evaluate_model.report import render_html
    from kfp_llmops.components.evaluation.regression_gate.core import GateConfig, decide

    try:
        cfg = core.EvalConfig.from_dict(json_arg(args.eval_config, "--eval-config") if args.eval_config else None)
        gate_cfg = GateConfig.from_dict(json_arg(args.gate_config, "--gate-config") if args.gate_config else None)
        pairs, slices = core.read_eval_set(args.eval_data, cfg)
        if not Path(args.adapter).is_dir():
            raise UserInputError(f"--adapter {args.adapter}: no such adapter folder")
        named = {"base": args.base_model, **dict(key_value(b, "--baseline") for b in args.baseline or [])}
        report = core.evaluate_adapter(args.base_model, args.adapter, pairs, named, cfg, slices)
        decision = decide(report["comparisons"], gate_cfg)
    except UserInputError as exc:
        print(f"kfp-llmops evaluate: error: {exc}", file=sys.stderr)
        return 2
    flat = core.flat_metrics(report)
    for key in ("exact_match", "rouge_l", "bleu", "sentence_bleu", "perplexity", "ece", "latency_p95_ms", "attack_success_rate"):
        print(f"{key:<20} " + "  ".join(f"{name} {flat[f'{name}.{key}']:.4f}" for name in report["models"] if f"{name}.{key}" in flat))
    print(decision.markdown())
    if args.out:
        out = Path(args.out)
        write_results(report, out)
        (out / "report.html").write_text(render_html(report, decision, gate_cfg.primary_metric), encoding="utf-8")
        (out / "metrics.json").write_text(json.dumps(flat, indent=1) + "\n", encoding="utf-8")
    return 0 if decision.passed else 1
