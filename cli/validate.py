"""``kfp-llmops validate``: validate and screen a dataset, as the validate-dataset step does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kfp_llmops.cli.arguments import json_arg, key_value
from kfp_llmops.errors import UserInputError


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="validate and screen a dataset: exit 0 passed, 1 critical failure, 2 unreadable")
    p.add_argument("dataset", help="the dataset file (JSONL, CSV, Parquet or Arrow) or a folder of shards")
    p.add_argument("--suite", help="a GX suite (JSON file) instead of the default suite")
    p.add_argument("--screening", help="screening config overrides (JSON or a JSON file)")
    p.add_argument("--eval-set", help="check contamination against this eval set")
    p.add_argument("--reference", help="check drift against this reference dataset")
    p.add_argument("--out", help="write report.html, gx_result.json, metrics.json and validated.jsonl here")
    p.add_argument("--format", default="auto", help="jsonl, csv, parquet or arrow (default: from the suffix)")
    p.add_argument("--record-format", default="auto", help="instruction, chat or sharegpt (default: from the columns)")
    p.add_argument("--column", action="append", metavar="OURS=THEIRS", help="map a column name, e.g. response=completion")
    p.add_argument("--max-length", type=int, default=4096, help="longest allowed record, in characters (default 4096)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Exit 0: passed; 1: a critical check failed; 2: the input (or a config) cannot be read."""
    from kfp_llmops.components.data.validate_dataset import core
    from kfp_llmops.configs import ScreeningConfig
    from kfp_llmops.datasets import DatasetSpec

    try:
        columns = dict(key_value(c, "--column") for c in args.column or [])
        spec = DatasetSpec(args.dataset, file_format=args.format, record_format=args.record_format, columns=columns)
        suite = json_arg(args.suite, "--suite") if args.suite else None
        screening = ScreeningConfig.from_dict(json_arg(args.screening, "--screening") if args.screening else None)
        result, cleaned = core.validate_files(spec, core.ValidationConfig(max_length=args.max_length, suite=suite),
                                              screening, eval_path=args.eval_set, reference_path=args.reference)
    except UserInputError as exc:
        print(f"kfp-llmops validate: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.out:
        out = Path(args.out)
        core.write_outputs(result, cleaned, report_path=out / "report.html", gx_result_path=out / "gx_result.json",
                           data_path=out / "validated.jsonl" if result.success else None)
        (out / "metrics.json").write_text(json.dumps(result.metrics(), indent=2) + "\n", encoding="utf-8")
        print(f"reports in {out}/ (report.html, gx_result.json, metrics.json{', validated.jsonl' if result.success else ''})")
    return 0 if result.success else 1
