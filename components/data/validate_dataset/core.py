"""Validates a training dataset with a Great Expectations 1.x suite and screens it; never imports kfp.

The suite is the built-in default for the record format (instruction or chat), or a GX suite the user passes
(its JSON). Every expectation has a GX severity: ``critical`` failures fail validation, ``warning`` and ``info``
ones are reported and let the run go on. Chat records are checked through derived columns (message count, roles,
last role, empty contents), so plain GX expectations apply to them too.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from kfp_llmops.datasets import REQUIRED, DatasetSpec, Table, read_table
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.prompts import ROLES

SEVERITIES = ("critical", "warning", "info")
CHAT_ROLES = ROLES  # what the prompt formats render: a row validation passes must prepare


@dataclass(frozen=True)
class ValidationConfig:
    """The default suite's knobs. ``suite``: a GX suite as JSON (``{"name", "expectations": [...]}``) that replaces it."""

    min_length: int = 1
    max_length: int = 4096
    duplicates_severity: str = "warning"
    max_examples: int = 5
    suite: dict | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_length <= self.max_length:
            raise ConfigError(f"ValidationConfig: need 0 <= min_length <= max_length, got {self.min_length}, {self.max_length}")
        if self.duplicates_severity not in SEVERITIES:
            raise ConfigError(f"ValidationConfig.duplicates_severity must be one of {SEVERITIES}, got {self.duplicates_severity!r}")
        if self.suite is not None and not isinstance(self.suite.get("expectations"), list):
            raise ConfigError("ValidationConfig.suite must be a GX suite JSON object with an 'expectations' list")


@dataclass(frozen=True)
class CheckResult:
    """One expectation (or screening check) over the dataset, passed or failed, with sample offending rows."""

    check: str
    field: str
    severity: str
    success: bool
    unexpected_count: int = 0
    lines: list[int] = field(default_factory=list)
    examples: list = field(default_factory=list)
    action: str = ""

    def describe(self) -> str:
        if self.success:
            return f"{self.check} passed on field {self.field!r}"
        where = ", ".join(str(n) for n in self.lines) or "n/a"
        done = {"drop": "; dropped", "mask": "; masked"}.get(self.action, "")
        return (
            f"[{self.severity}] {self.check} failed on field {self.field!r}: {self.unexpected_count} row(s){done}; "
            f"line(s) {where}; value(s) {self.examples!r}"
        )


@dataclass
class ValidationResult:
    path: str
    rows: int
    record_format: str
    checks: list[CheckResult] = field(default_factory=list)
    gx_result: dict = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)
    dropped_lines: list = field(default_factory=list)
    masked_rows: int = 0

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [c for c in self.failures if c.severity == "critical"]

    @property
    def success(self) -> bool:
        return not self.critical_failures

    def summary(self) -> str:
        head = (
            f"{self.path}: {self.rows} {self.record_format} rows, {len(self.checks)} checks, "
            f"{len(self.critical_failures)} critical and {len(self.failures) - len(self.critical_failures)} other failures"
        )
        return "\n".join([head, *(f"- {c.describe()}" for c in self.failures)])

    def metrics(self) -> dict[str, float]:
        out = {"rows": self.rows, "checks": len(self.checks), "checks_failed": len(self.failures),
               "critical_failures": len(self.critical_failures)}
        for c in self.failures:
            if c.unexpected_count:
                out[f"failed_rows.{c.check}.{c.field}"] = c.unexpected_count
        for feature, score in self.drift.items():
            out[f"drift_psi.{feature}"] = score
        out["rows_dropped"] = len(self.dropped_lines)
        out["rows_masked"] = self.masked_rows
        out["rows_out"] = self.rows - len(self.dropped_lines)
        return out

    def markdown(self) -> str:
        lines = [
            f"# Data validation: {'PASSED' if self.success else 'FAILED'}",
            "",
            f"- dataset: `{self.path}` ({self.record_format} records)",
            f"- rows: {self.rows}",
            f"- checks: {len(self.checks)}, failed: {len(self.failures)} ({len(self.critical_failures)} critical)",
        ]
        if self.failures:
            lines += ["", "| severity | check | field | rows | lines | examples |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {c.severity} | {c.check} | {c.field} | {c.unexpected_count} | {', '.join(map(str, c.lines))} | {c.examples!r} |"
                for c in self.failures
            ]
        return "\n".join(lines) + "\n"


# --- the default suites ---------------------------------------------------------------------------------------


def default_suite(record_format: str, cfg: ValidationConfig, columns: list[str]) -> dict:
    """The built-in suite for a record format, as GX suite JSON (the same shape a user passes)."""

    def exp(type_: str, severity: str = "critical", **kwargs) -> dict:
        return {"type": type_, "kwargs": kwargs, "severity": severity}

    expectations = []
    if record_format == "instruction":
        for col in REQUIRED["instruction"]:
            expectations += [
                exp("expect_column_values_to_not_be_null", column=col),
                exp("expect_column_values_to_not_match_regex", column=col, regex=r"^\s*$"),
                exp("expect_column_value_lengths_to_be_between", column=col, min_value=cfg.min_length, max_value=cfg.max_length),
            ]
        if "input" in columns:
            expectations.append(exp("expect_column_value_lengths_to_be_between", "warning", column="input", max_value=cfg.max_length))
        expectations.append(exp("expect_compound_columns_to_be_unique", cfg.duplicates_severity, column_list=list(REQUIRED["instruction"])))
    else:
        expectations += [
            exp("expect_column_values_to_be_between", column="messages.count", min_value=2),
            exp("expect_column_values_to_be_in_set", column="messages.last_role", value_set=["assistant"]),
            exp("expect_column_values_to_be_in_set", column="messages.unknown_roles", value_set=[0]),
            exp("expect_column_values_to_be_in_set", column="messages.empty_contents", value_set=[0]),
            exp("expect_column_values_to_be_between", column="messages.max_length", min_value=cfg.min_length, max_value=cfg.max_length),
            exp("expect_column_values_to_be_unique", cfg.duplicates_severity, column="messages.text"),
        ]
    return {"name": f"kfp-llmops-default-{record_format}", "expectations": expectations}


# --- running it ---------------------------------------------------------------------------------------------------


def validate_table(table: Table, cfg: ValidationConfig | None = None) -> ValidationResult:
    """Type/structure checks, then the GX suite; every failure names check, field, severity, lines and examples."""
    cfg = cfg or ValidationConfig()
    result = ValidationResult(path=table.path, rows=len(table), record_format=table.record_format)
    frame = table.frame.copy()
    if table.record_format == "instruction":
        for col in [c for c in ("instruction", "input", "response") if c in frame.columns]:
            bad = _non_strings(frame[col])
            result.checks.append(_check("expect_column_values_to_be_strings", col, "critical", bad, frame[col], table, cfg))
            if bad:
                frame[col] = frame[col].map(lambda v: v if v is None or _isnan(v) or isinstance(v, str) else str(v))
    else:
        derived, bad = chat_columns(frame["messages"])
        result.checks.append(_check("expect_messages_to_be_role_content_lists", "messages", "critical", bad, frame["messages"], table, cfg))
        frame = frame.join(derived)
    suite = cfg.suite if cfg.suite is not None else default_suite(table.record_format, cfg, list(frame.columns))
    _check_suite_columns(suite, frame)
    gx_results, result.gx_result = _run_gx(frame, suite, cfg)
    for r in gx_results:
        kwargs = r.expectation_config.kwargs
        col = kwargs.get("column") or "+".join(kwargs.get("column_list", []))
        severity = _severity(r.expectation_config)
        idx = [i if isinstance(i, int) else next(iter(i.values())) for i in (r.result.get("partial_unexpected_index_list") or [])]
        values = frame[col] if col in frame.columns else _joined(frame, kwargs.get("column_list", []), idx)
        if col == "messages.unknown_roles" and "messages" in frame.columns:  # show the roles, not their count
            values = _unknown_roles(frame["messages"], idx)
        count = int(r.result.get("unexpected_count") or (0 if r.success else len(idx)))
        check = _check(r.expectation_config.type, col, severity, idx, values, table, cfg, success=r.success, count=count)
        result.checks.append(check)
    return result


def _non_strings(series) -> list[int]:
    """Row indexes whose value is neither missing nor a string (pandas' C type inference first: usually all strings)."""
    import pandas as pd

    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return []
    return [i for i, v in enumerate(series) if not (v is None or _isnan(v) or isinstance(v, str))]


def _unknown_roles(messages, rows: list[int]):
    """The roles outside system, user and assistant of each row shown in an unknown-roles failure."""
    import pandas as pd

    def roles(msgs):
        msgs = msgs.tolist() if hasattr(msgs, "tolist") else msgs
        return sorted({m.get("role") for m in msgs if isinstance(m, dict)} - set(CHAT_ROLES), key=str)

    return pd.Series({i: "roles " + ", ".join(map(repr, roles(messages.iloc[i]))) for i in rows}, dtype=object)


def _joined(frame, columns: list[str], rows: list[int]):
    """``col1 | col2`` for the rows shown in a compound-column failure (and only those)."""
    import pandas as pd

    return pd.Series({i: " | ".join(str(frame[c].iloc[i]) for c in columns) for i in rows}, dtype=object)


def chat_columns(messages):
    """Derived columns for chat records, and the row indexes whose ``messages`` is not a list of {role, content}."""
    import pandas as pd

    count, last_role, unknown, empty, longest, text, bad = [], [], [], [], [], [], []
    for i, msgs in enumerate(messages):
        ok = isinstance(msgs, (list, tuple)) or hasattr(msgs, "tolist")
        msgs = list(msgs.tolist() if hasattr(msgs, "tolist") else msgs) if ok else []
        ok = ok and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in msgs)
        if not ok:
            bad.append(i)
            msgs = []
        count.append(len(msgs))
        last_role.append(msgs[-1]["role"] if msgs else "")
        unknown.append(sum(m["role"] not in CHAT_ROLES for m in msgs))
        empty.append(sum(not m["content"].strip() for m in msgs))
        longest.append(max((len(m["content"]) for m in msgs), default=0))
        text.append("\x1e".join(f"{m['role']}\x1f{m['content']}" for m in msgs))
    derived = pd.DataFrame({
        "messages.count": count, "messages.last_role": last_role, "messages.unknown_roles": unknown,
        "messages.empty_contents": empty, "messages.max_length": longest, "messages.text": text,
    }, index=messages.index)
    return derived, bad


def _check_suite_columns(suite: dict, frame) -> None:
    for e in suite["expectations"]:
        if not isinstance(e, dict) or "type" not in e:
            raise UserInputError(f"suite {suite.get('name')!r}: each expectation needs a 'type', got {e!r}")
        kwargs = e.get("kwargs", {})
        for col in [kwargs["column"]] if "column" in kwargs else kwargs.get("column_list", []):
            if col not in frame.columns:
                raise UserInputError(
                    f"suite {suite.get('name')!r}: {e['type']} names column {col!r}, which the dataset lacks; "
                    f"columns are {sorted(frame.columns)}"
                )


def _run_gx(frame, suite_json: dict, cfg: ValidationConfig):
    """Runs the suite in two passes, as GX's result formats allow: every expectation with ``BOOLEAN_ONLY`` (its
    success and nothing else: no unexpected values, indexes or value counts to compute), then only the failed ones
    again with ``SUMMARY`` for the examples the report shows. Passing data (the common case) costs the first pass
    only; the results are those of a single ``SUMMARY`` run."""
    import copy
    import json

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    try:
        expectations = [ExpectationConfiguration(**e).to_domain_obj() for e in suite_json["expectations"]]
    except Exception as exc:  # GX raises pydantic and its own errors for a bad suite
        raise UserInputError(f"suite {suite_json.get('name')!r} is not a valid GX suite: {exc}") from None
    batch = ctx.data_sources.add_pandas("kfp-llmops").add_dataframe_asset("records").add_batch_definition_whole_dataframe("all")
    name = suite_json.get("name") or "user-suite"

    def run(suite_name: str, items: list, result_format: dict):
        suite = ctx.suites.add(gx.ExpectationSuite(name=suite_name, expectations=items))
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
        with _without_gx_fingerprint():
            return vd.run(batch_parameters={"dataframe": frame}, result_format=result_format)

    def key(config) -> str:
        return json.dumps([config.type, config.kwargs], sort_keys=True, default=str)

    first = run(name, expectations, {"result_format": "BOOLEAN_ONLY"})
    results, document = list(first.results), first.to_json_dict()
    failed = [i for i, r in enumerate(results) if not r.success]
    if failed:
        by_id = {e.id: e for e in expectations}  # the suite gave them ids; a second suite takes copies
        again = run(f"{name}-failures", [copy.copy(by_id[results[i].expectation_config.id]) for i in failed],
                    {"result_format": "SUMMARY", "partial_unexpected_count": cfg.max_examples})
        detailed = {key(r.expectation_config): r for r in again.results}
        detailed_json = {key(r.expectation_config): j for r, j in zip(again.results, again.to_json_dict()["results"])}
        for i in failed:
            k = key(results[i].expectation_config)
            if k in detailed:
                results[i] = detailed[k]
                document["results"][i] = detailed_json[k]
    return results, document


@contextlib.contextmanager
def _without_gx_fingerprint():
    """GX md5-hashes every in-memory batch below ``HASH_THRESHOLD`` bytes (shallow size, so any frame of strings) only
    to put a ``pandas_data_fingerprint`` in the batch markers; our dataset artifact already carries the file's sha256.
    Skipping it takes a quarter off validating a million rows (7.5 s -> 5.7 s) and changes no result."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def _severity(config) -> str:
    value = getattr(config, "severity", None)
    value = getattr(value, "value", value) or (config.meta or {}).get("severity") or "critical"
    return str(value)


def _check(check, col, severity, indices, series, table: Table, cfg: ValidationConfig, *, success=None, count=None) -> CheckResult:
    shown = list(indices)[: cfg.max_examples]
    return CheckResult(
        check=check,
        field=col,
        severity=severity,
        success=(not indices) if success is None else bool(success),
        unexpected_count=len(indices) if count is None else count,
        lines=[table.line_of(i) for i in shown],
        examples=[_short(series.loc[i]) for i in shown],
    )


def _short(value, limit: int = 60):
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"... ({len(value)} chars)"
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, dict)):
        return _short(json.dumps(value, default=str), limit)
    return None if _isnan(value) else value


def _isnan(value) -> bool:
    return isinstance(value, float) and value != value


def screening_checks(screened, table: Table) -> list[CheckResult]:
    """The screening flags and drift scores as checks in the same report as the GX expectations."""
    from kfp_llmops.configs import ACTION_SEVERITY

    checks = []
    for flag in screened.flags:
        rows = sorted(flag.rows)
        checks.append(CheckResult(
            check=flag.check, field=flag.field, severity=ACTION_SEVERITY[flag.action], success=not rows,
            unexpected_count=len(rows), lines=[table.line_of(i) for i in rows[:5]], examples=[flag.rows[i] for i in rows[:5]],
            action=flag.action,
        ))
    for feature, score in sorted(screened.drift.items()):
        checks.append(CheckResult(
            check="screen_drift_psi", field=feature, severity=ACTION_SEVERITY[screened.drift_action],
            success=score <= screened.drift_threshold, unexpected_count=0, examples=[round(score, 4)],
            action=screened.drift_action,
        ))
    return checks


def validate(table: Table, cfg: ValidationConfig | None = None, screening=None, eval_table: Table | None = None,
             reference: Table | None = None) -> tuple[ValidationResult, Table]:
    """The GX suite, then screening; returns the result and the table to pass on (rows dropped, PII masked)."""
    from kfp_llmops.components.data.validate_dataset.screening import screen
    from kfp_llmops.configs import ScreeningConfig

    result = validate_table(table, cfg)
    screening = screening or ScreeningConfig()
    screened = screen(table, screening, eval_table, reference)
    result.checks += screening_checks(screened, table)
    result.drift = dict(screened.drift)
    result.dropped_lines = [table.line_of(i) for i in sorted(screened.drop)]  # in file (and shard) order
    result.masked_rows = len(screened.masked)
    keep = [i for i in range(len(table)) if i not in screened.drop]
    cleaned = Table(table.path, table.file_format, table.record_format,
                    table.frame.iloc[keep].reset_index(drop=True), [table.lines[i] for i in keep],
                    table.source_record_format)
    return result, cleaned


def validate_files(spec: DatasetSpec, cfg: ValidationConfig | None = None, screening=None, *,
                   eval_path: str | None = None, reference_path: str | None = None,
                   expected_sha256: str = "") -> tuple[ValidationResult, Table]:
    """Reads the dataset (and the eval and reference sets, if given) and validates it: what the component and
    ``kfp-llmops validate`` both run. ``expected_sha256``, when given, must match the file's content."""
    from kfp_llmops.lineage import sha256_path

    table = read_table(spec)
    if expected_sha256 and sha256_path(spec.path) != expected_sha256:
        raise UserInputError(f"{spec.path}: content sha256 {sha256_path(spec.path)} differs from the expected {expected_sha256} "
                             "(the file changed after the run was submitted)")
    eval_table = read_table(DatasetSpec(eval_path, columns=spec.columns)) if eval_path else None
    reference = read_table(DatasetSpec(reference_path, columns=spec.columns)) if reference_path else None
    return validate(table, cfg, screening, eval_table, reference)


def write_outputs(result: ValidationResult, cleaned: Table, *, report_path, gx_result_path, data_path=None) -> None:
    """Writes the HTML report, the GX result JSON and (if ``data_path``) the canonical JSONL, each atomically."""
    from kfp_llmops.components.data.validate_dataset.report import render_html
    from kfp_llmops.datasets import write_canonical_jsonl
    from kfp_llmops.lineage import atomic_file

    with atomic_file(report_path) as tmp:
        tmp.write_text(render_html(result), encoding="utf-8")
    with atomic_file(gx_result_path) as tmp:
        tmp.write_text(json.dumps(result.gx_result, indent=1, default=str), encoding="utf-8")
    if data_path is not None:
        with atomic_file(data_path) as tmp:
            write_canonical_jsonl(cleaned, tmp)
