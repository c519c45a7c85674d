"""``kfp-llmops demo-assets``: the tiny demo model, tokenizer and datasets."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo-assets", help="build the tiny demo model, tokenizer and datasets (deterministic)")
    p.add_argument("out_dir", help="folder to write base-model/, train.jsonl, eval.jsonl and assets.json into")
    p.set_defaults(func=run)


def demo_arguments(assets_dir: Path) -> dict:
    return {
        "base_model": str(assets_dir / "base-model"),
        "train_data": str(assets_dir / "train.jsonl"),
        "eval_data": str(assets_dir / "eval.jsonl"),
    }


def run(args) -> int:
    from kfp_llmops.demo.assets import build_demo_assets

    summary = build_demo_assets(args.out_dir)
    print(json.dumps(summary, indent=2))
    return 0
