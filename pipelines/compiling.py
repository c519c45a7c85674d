"""Compiles every pipeline for Kubeflow (``pipelines/compiled/kfp``) and Vertex AI (``pipelines/compiled/vertex``)."""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from kfp_llmops.pipelines.platform import TARGETS
from kfp_llmops.pipelines.registry import PIPELINES, build

from kfp_llmops.specs import COMPILED_SPECS as DEFAULT_OUT


def same_spec(a: str, b: str) -> bool:
    """Whether two compiled specs say the same thing. The KFP compiler's header comment lists dict defaults in
    an order that changes from process to process, so the YAML documents are compared, not the text."""
    import yaml

    return list(yaml.safe_load_all(a)) == list(yaml.safe_load_all(b))


def compile_all(out_dir: str | Path = DEFAULT_OUT) -> list[Path]:
    """Compiles every pipeline for every target; a file whose spec did not change is left as it is."""
    from kfp import compiler

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(PIPELINES):
            for target in TARGETS:
                fresh = Path(tmp) / f"{target}-{name}.yaml"
                compiler.Compiler().compile(build(name, target), str(fresh))
                path = Path(out_dir) / target / f"{name}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                if not (path.exists() and same_spec(path.read_text(), fresh.read_text())):
                    fresh.replace(path)
                written.append(path)
    return written


def check(committed_dir: str | Path = DEFAULT_OUT) -> list[str]:
    """Problems (one line each) where the committed specs differ from what the code compiles now."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in compile_all(tmp):
            committed = Path(committed_dir) / fresh.relative_to(tmp)
            if not committed.exists():
                problems.append(f"{committed}: missing; run `python compile.py`")
                continue
            old, new = committed.read_text(), fresh.read_text()
            if not same_spec(old, new):
                diff = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
                        if line[:1] in "+-" and not line.startswith(("---", "+++")) and not line[1:].startswith("#")]
                problems.append(f"{committed}: differs from what the code compiles; run `python compile.py`. First: "
                                + " | ".join(diff[:3]))
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
