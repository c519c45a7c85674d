"""KFP component: validate and screen a training dataset before anything trains on it."""

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
    eval_dataset: Input[Dataset] = None,
    reference_data: str = "",
    expected_sha256: str = "",
    file_format: str = "auto",
    record_format: str = "auto",
    columns: dict = {},
    suite: dict = {},
    screening: dict = {},
    max_length: int = 4096,
) -> bool:
    """Runs the GX suite (``suite``, or the default for the record format) and the screening (PII, duplicates,
    contamination against ``eval_dataset``, drift against ``reference_data``), and writes the canonical JSONL of the
    rows that pass on (flagged rows dropped or masked as configured).

    Returns whether nothing critical failed; the pipeline stops before training when it is False, with the HTML
    report and the GX result kept as outputs. Unreadable input fails the step with the reason and the line.
    """
    from kfp.dsl import Dataset as _Dataset

    from kfp_llmops.components.data.validate_dataset import core
    from kfp_llmops.configs import ScreeningConfig
    from kfp_llmops.datasets import DatasetSpec
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import lineage, sha256_path

    with user_errors():
        spec = DatasetSpec(dataset.path, file_format=file_format, record_format=record_format, columns=dict(columns))
        result, cleaned = core.validate_files(
            spec,
            core.ValidationConfig(max_length=max_length, suite=dict(suite) or None),
            ScreeningConfig.from_dict(dict(screening)),
            eval_path=eval_dataset.path if eval_dataset is not None else None,
            reference_path=_Dataset(uri=reference_data).path if reference_data else None,
            expected_sha256=expected_sha256,
        )
    print(result.summary())
    core.write_outputs(result, cleaned, report_path=report.path, gx_result_path=gx_result.path, data_path=validated.path)
    parents = {"dataset": dataset.uri}
    if eval_dataset is not None:
        parents["eval_dataset"] = eval_dataset.uri
    if reference_data:
        parents["reference"] = reference_data
    validated.metadata.update(
        lineage(path=validated.path, parents=parents, rows=len(cleaned), format="jsonl", record_format=cleaned.record_format,
                schema=list(cleaned.frame.columns), source_sha256=sha256_path(dataset.path), source_rows=result.rows,
                source_format=cleaned.file_format, validation_passed=result.success,
                **({"source_record_format": cleaned.source_record_format} if cleaned.source_record_format else {}))
    )
    report.metadata.update({"parents": parents, "passed": result.success, "summary": result.summary()})
    gx_result.metadata.update({"parents": parents, "format": "great-expectations-validation-result-json"})
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    return result.success
