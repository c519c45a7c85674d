"""``kfp-llmops compare``: runs and registered versions side by side."""

from __future__ import annotations

from pathlib import Path

from kfp_llmops.errors import UserInputError


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare runs side by side (kfp.local run folders and/or registry versions)")
    p.add_argument("runs", nargs="*", help="kfp.local run folders (e.g. build/local-runs/finetune-and-rollout-...)")
    p.add_argument("--model", default="llm", help="the registered model of --version (default llm)")
    p.add_argument("--version", action="append", default=[], help="a registered version to compare (repeatable)")
    p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
    p.add_argument("--out", default="build/compare", help="folder for compare.html and compare.md (default build/compare)")
    p.set_defaults(func=run)


def run(args) -> int:
    from kfp_llmops import compare
    from kfp_llmops.lineage import atomic_file

    records = [compare.from_run_dir(run) for run in args.runs]
    if args.version:
        from kfp_llmops.registry import open_registry

        registry = open_registry(args.registry_uri)
        records += [compare.from_registry(registry, args.model, v) for v in args.version]
    if len(records) < 2:
        raise UserInputError("compare needs at least two runs or versions")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = compare.compare_markdown(records)
    with atomic_file(out / "compare.html") as tmp:
        tmp.write_text(compare.compare_html(records), encoding="utf-8")
    with atomic_file(out / "compare.md") as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    print(markdown + f"\nwrote {out / 'compare.html'} and {out / 'compare.md'}")
    return 0
