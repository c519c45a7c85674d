"""``kfp-llmops compile``: every pipeline for Kubeflow and Vertex AI (or ``--check`` the committed specs)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compile", help="compile every pipeline for Kubeflow and Vertex AI")
    p.add_argument("--check", action="store_true", help="exit 1 naming any committed spec that is stale; write nothing")
    p.add_argument("--out", default=None, help="write the specs here instead of pipelines/compiled/")
    p.set_defaults(func=run)


def run(args) -> int:
    from kfp_llmops.pipelines.compiling import main

    argv = ["--check"] if args.check else []
    if args.out:
        argv += ["--out", args.out]
    return main(argv)
