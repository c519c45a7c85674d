"""The ``kfp-llmops`` command: an application on top of the components and pipelines, like ``pipelines/``.

One module per command (or pair of commands), each with its parser (``add_parser``) beside its handler (``run``):
``demo-assets``, ``compile``, ``run`` and ``schedule``, ``validate``, ``evaluate``, ``registry``, ``approve`` and
``reject``, ``monitor``, ``compare``."""

from __future__ import annotations

import argparse
import sys

from kfp_llmops.errors import UserInputError

COMMANDS = ("demo", "validate", "evaluate", "compile", "registry", "monitor", "compare", "approval", "submit")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="kfp-llmops", description="LLM fine-tune-to-rollout pipelines for Kubeflow and Vertex AI.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"kfp_llmops.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserInputError as exc:
        print(f"kfp-llmops: error: {exc}", file=sys.stderr)
        return 2
