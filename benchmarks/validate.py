"""Benchmark: validating 1,000,000 instruction rows with our default suite (type checks + Great Expectations),
against raw vectorized pandas doing the same checks on the same data, in one run.

Same checks on both sides: values are strings, not null, not blank, lengths within bounds (instruction and
response), and (instruction, response) pairs unique. Both sides get the same DataFrame already in memory.
"""

from __future__ import annotations

import argparse
import random
import sys

from common import best_of, table, write_result

WORDS = "the a model data train eval loss token batch step value result error file run cloud queue node".split()


def make_frame(rows: int, seed: int = 0):
    import pandas as pd

    rng = random.Random(seed)
    instr = [f"question {i}: " + " ".join(rng.choices(WORDS, k=rng.randint(3, 30))) for i in range(rows)]
    resp = [" ".join(rng.choices(WORDS, k=rng.randint(5, 60))) for _ in range(rows)]
    return pd.DataFrame({"instruction": instr, "response": resp})


def pandas_checks(frame, min_length: int = 1, max_length: int = 4096) -> dict:
    out = {}
    for col in ("instruction", "response"):
        s = frame[col]
        out[f"{col}.strings"] = int((~s.map(type).eq(str) & s.notna()).sum())
        out[f"{col}.null"] = int(s.isna().sum())
        out[f"{col}.blank"] = int(s.str.match(r"^\s*$").fillna(False).sum())
        lengths = s.str.len()
        out[f"{col}.length"] = int(((lengths < min_length) | (lengths > max_length)).sum())
    out["duplicates"] = int(frame.duplicated(["instruction", "response"], keep=False).sum())
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    from kfp_llmops.components.data.validate_dataset import core
    from kfp_llmops.datasets import Table

    frame = make_frame(args.rows)
    table_ = Table("bench", "jsonl", "instruction", frame, list(range(1, args.rows + 1)))
    ours_result = core.validate_table(table_)
    assert ours_result.success, ours_result.summary()
    assert sum(pandas_checks(frame).values()) == 0
    ours = best_of(lambda: core.validate_table(table_), args.repeats)
    baseline = best_of(lambda: pandas_checks(frame), args.repeats)
    result = write_result(
        "validate", metric="seconds to validate", unit="s", ours=ours, baseline=baseline,
        baseline_name="vectorized pandas, same checks", higher_is_better=False,
        goal="ratio >= 0.5 (at most 2x the pandas time)",
        details={"rows": args.rows, "checks": len(ours_result.checks), "repeats": args.repeats,
                 "rows_per_second_ours": args.rows / ours, "rows_per_second_baseline": args.rows / baseline},
    )
    print(table())
    return 0 if result["ratio"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
