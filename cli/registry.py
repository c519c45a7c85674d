"""``kfp-llmops registry``: a model's aliases, or production rolled back to the previous version."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("registry", help="show a model's aliases, or roll production back to the previous version")
    p.add_argument("action", choices=["aliases", "rollback"], help="aliases: show them; rollback: production back to previous")
    p.add_argument("--model", required=True, help="the registered model name (the pipelines' model_name)")
    p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
    p.set_defaults(func=run)


def run(args) -> int:
    from kfp_llmops.registry import open_registry, rollback

    registry = open_registry(args.registry_uri)
    if args.action == "rollback":
        was, now = rollback(registry, args.model)
        print(f"{args.model}: production moved back from version {was} to version {now}")
    print(json.dumps({"registry_uri": registry.uri, "model": args.model, "aliases": registry.aliases(args.model)}, indent=2))
    return 0
