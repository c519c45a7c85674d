"""Compiles every pipeline for Kubeflow (``pipelines/compiled/kfp``) and Vertex AI (``pipelines/compiled/vertex``)."""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from kfp_llmops.pipelines.platform import TARGETS
from kfp_llmops.pipelines.registry import PIPELINES, build

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "pipelines" / "compiled"


def compile_all(out_dir: str | Path = DEFAULT_OUT) -> list[Path]:
    from kfp import compiler

    written = []
    for name in sorted(PIPELINES):
        for target in TARGETS:
            path = Path(out_dir) / target / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            compiler.Compiler().compile(build(name, target), str(path))
            written.append(path)
    return written


def check(committed_dir: str | Path = DEFAULT_OUT) -> list[str]:
    """Problems (one line each) where the committed specs differ from what the code compiles now."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in compile_all(tmp):
            rel = fresh.relative_to(tmp)
            committed = Path(committed_dir) / rel
            if not committed.exists():
                problems.append(f"{committed}: missing; run `python compile.py`")
                continue
            old, new = committed.read_text().splitlines(), fresh.read_text().splitlines()
            if old != new:
                diff = list(difflib.unified_diff(old, new, str(committed), "compiled now", lineterm="", n=0))
                problems.append(f"{committed}: differs from what the code compiles ({len(diff)} diff lines), first: "
                                + " | ".join(diff[2:5]))
    return problems


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="compile.py", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed spec differs from the code")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: pipelines/compiled)")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for p in problems:
            print(p)
        if not problems:
            print(f"compiled specs in {args.out} are up to date")
        return 1 if problems else 0
    for path in compile_all(args.out):
        print(f"wrote {path}")
    return 0
