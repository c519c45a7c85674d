"""``kfp-llmops approve`` and ``reject``: the decision a run's await-approval step waits for."""

from __future__ import annotations


def add_parser(sub) -> None:
    for action in ("approve", "reject"):
        p = sub.add_parser(action, help=f"{action} a registered version that a run's await-approval step waits for")
        p.add_argument("model", help="the registered model name (the pipelines' model_name)")
        p.add_argument("version", help="the registered version")
        p.add_argument("--reason", required=True, help="why: kept in the registry with who decided")
        p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
        p.set_defaults(func=run, approved=action == "approve")


def run(args) -> int:
    from kfp_llmops.components.registry.await_approval.core import record
    from kfp_llmops.registry import open_registry

    decision = record(open_registry(args.registry_uri), args.model, args.version, approved=args.approved, reason=args.reason)
    print(f"{args.model} version {args.version}: {'approved' if decision.approved else 'rejected'} by {decision.by} "
          f"at {decision.at}")
    return 0
