"""Validates an instruction dataset with a Great Expectations 1.x suite; never imports kfp."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_llmops.datasets import Records
from kfp_llmops.errors import ConfigError, UserInputError


@dataclass(frozen=True)
class ValidationConfig:
    """The default suite's knobs: which fields must be present, and how long their values may be (characters)."""

    required_fields: tuple[str, ...] = ("instruction", "response")
    min_length: int = 1
    max_length: int = 4096
    allow_duplicates: bool = False
    max_examples: int = 5

    def __post_init__(self) -> None:
        if not self.required_fields:
            raise ConfigError("ValidationConfig.required_fields must name at least one field")
        if not 0 <= self.min_length <= self.max_length:
            raise ConfigError(f"ValidationConfig: need 0 <= min_length <= max_length, got {self.min_length}, {self.max_length}")


@dataclass(frozen=True)
class Failure:
    expectation: str
    field: str
    unexpected_count: int
    lines: list[int]
    examples: list

    def describe(self) -> str:
        where = ", ".join(str(n) for n in self.lines) or "n/a"
        return (
            f"{self.expectation} failed on field {self.field!r}: {self.unexpected_count} row(s); "
            f"line(s) {where}; value(s) {self.examples!r}"
        )


@dataclass
class ValidationResult:
    path: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = f"{self.path}: {self.rows} rows, {self.evaluated} expectations, {len(self.failures)} failed"
        return "\n".join([head, *(f"- {f.describe()}" for f in self.failures)])

    def markdown(self) -> str:
        lines = [
            f"# Data validation: {'PASSED' if self.success else 'FAILED'}",
            "",
            f"- dataset: `{self.path}`",
            f"- rows: {self.rows}",
            f"- expectations evaluated: {self.evaluated}, failed: {len(self.failures)}",
        ]
        if self.failures:
            lines += ["", "| expectation | field | rows | lines | examples |", "|---|---|---|---|---|"]
            lines += [
                f"| {f.expectation} | {f.field} | {f.unexpected_count} | {', '.join(map(str, f.lines))} | {f.examples!r} |"
                for f in self.failures
            ]
        return "\n".join(lines) + "\n"


def build_suite(cfg: ValidationConfig):
    """The default suite; needs an active GX context (``gx.get_context``)."""
    import great_expectations as gx

    exp = gx.expectations
    suite = gx.ExpectationSuite(name="instruction-dataset-default")
    for col in cfg.required_fields:
        suite.add_expectation(exp.ExpectColumnToExist(column=col))
        suite.add_expectation(exp.ExpectColumnValuesToNotBeNull(column=col))
        suite.add_expectation(exp.ExpectColumnValuesToNotMatchRegex(column=col, regex=r"^\s*$"))
        suite.add_expectation(
            exp.ExpectColumnValueLengthsToBeBetween(column=col, min_value=cfg.min_length, max_value=cfg.max_length)
        )
    if not cfg.allow_duplicates:
        suite.add_expectation(exp.ExpectCompoundColumnsToBeUnique(column_list=list(cfg.required_fields)))
    return suite


def validate_records(records: Records, cfg: ValidationConfig | None = None) -> ValidationResult:
    """Runs the type checks and the GX suite over ``records``; every failure names field, lines and examples."""
    import pandas as pd

    cfg = cfg or ValidationConfig()
    result = ValidationResult(path=records.path, rows=len(records.rows), evaluated=0)
    df = pd.DataFrame.from_records(records.rows)
    for col in cfg.required_fields:
        if col not in df.columns:
            continue
        bad = [i for i, v in enumerate(df[col]) if v is not None and not _isnan(v) and not isinstance(v, str)]
        result.evaluated += 1
        if bad:
            result.failures.append(_failure("expect_column_values_to_be_strings", col, bad, df[col], records, cfg))
            df[col] = df[col].map(lambda v: v if isinstance(v, str) or v is None or _isnan(v) else str(v))
    for col in cfg.required_fields:
        if col not in df.columns:
            df[col] = None  # so that every expectation runs; expect_column_to_exist below still reports it
    gx_results = _run_suite(df, cfg)
    present = {c for row in records.rows for c in row}
    for r in gx_results:
        result.evaluated += 1
        kwargs = r.expectation_config.kwargs
        col = kwargs.get("column") or "+".join(kwargs.get("column_list", []))
        etype = r.expectation_config.type
        if etype == "expect_column_to_exist":
            if col not in present:
                result.failures.append(Failure(etype, col, len(records.rows), [], []))
            continue
        if r.success:
            continue
        idx = r.result.get("unexpected_index_list") or []
        idx = [i if isinstance(i, int) else next(iter(i.values())) for i in idx]
        series = df[col] if col in df.columns else df[list(kwargs.get("column_list", []))].astype(str).agg(" | ".join, axis=1)
        result.failures.append(_failure(etype, col, idx, series, records, cfg))
    return result


def _run_suite(df, cfg: ValidationConfig):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = ctx.data_sources.add_pandas("kfp-llmops").add_dataframe_asset("records")
    batch = asset.add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(build_suite(cfg))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="validate", data=batch, suite=suite))
    run = vd.run(batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"})
    return run.results


def _failure(etype, col, indices, series, records: Records, cfg: ValidationConfig) -> Failure:
    shown = indices[: cfg.max_examples]
    examples = [_short(series.iloc[i]) for i in shown]
    return Failure(etype, col, len(indices), [records.lines[i] for i in shown], examples)


def _short(value, limit: int = 60):
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return None if _isnan(value) else value


def _isnan(value) -> bool:
    return isinstance(value, float) and value != value


def raise_on_failure(result: ValidationResult) -> None:
    if not result.success:
        raise UserInputError("data validation failed:\n" + result.summary())
