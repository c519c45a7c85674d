"""KFP component: validate a training dataset with Great Expectations before anything trains on it."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def validate_dataset(
    dataset: Input[Dataset],
    validated: Output[Dataset],
    report: Output[HTML],
    gx_result: Output[Artifact],
    metrics: Output[Metrics],
    file_format: str = "auto",
    record_format: str = "auto",
    columns: dict = {},
    suite: dict = {},
    max_length: int = 4096,
) -> bool:
    """Runs the GX suite (``suite``, or the default for the record format) and writes the canonical JSONL.

    Returns whether no critical expectation failed; the pipeline stops before training when it is False, with the
    HTML report and the GX result kept as outputs. Unreadable input fails the step with the reason and the line.
    """
    import json

    from kfp_llmops.components.data.validate_dataset import core
    from kfp_llmops.components.data.validate_dataset.report import render_html
    from kfp_llmops.datasets import DatasetSpec, read_table, write_canonical_jsonl
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file, lineage, sha256_path

    with user_errors():
        spec = DatasetSpec(dataset.path, file_format=file_format, record_format=record_format, columns=dict(columns))
        table = read_table(spec)
        cfg = core.ValidationConfig(max_length=max_length, suite=dict(suite) or None)
        result = core.validate_table(table, cfg)
    print(result.summary())
    with atomic_file(report.path) as tmp:
        tmp.write_text(render_html(result), encoding="utf-8")
    with atomic_file(gx_result.path) as tmp:
        tmp.write_text(json.dumps(result.gx_result, indent=1, default=str), encoding="utf-8")
    with atomic_file(validated.path) as tmp:
        write_canonical_jsonl(table, tmp)
    parents = {"dataset": dataset.uri}
    validated.metadata.update(
        lineage(path=validated.path, parents=parents, rows=len(table), format="jsonl", record_format=table.record_format,
                schema=list(table.frame.columns), source_sha256=sha256_path(dataset.path),
                source_format=table.file_format, validation_passed=result.success)
    )
    report.metadata.update({"parents": parents, "passed": result.success, "summary": result.summary()})
    gx_result.metadata.update({"parents": parents, "format": "great-expectations-validation-result-json"})
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    return result.success
