"""KFP component: validate an instruction dataset with Great Expectations before anything trains on it."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def validate_dataset(
    dataset: Input[Dataset],
    validated: Output[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
    max_length: int = 4096,
):
    """Runs the default GX suite over a JSONL dataset; fails naming expectation, field and lines, or passes it on."""
    import shutil

    from kfp_llmops.components.data.validate_dataset import core
    from kfp_llmops.datasets import read_jsonl
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file, lineage

    with user_errors():
        records = read_jsonl(dataset.path)
        result = core.validate_records(records, core.ValidationConfig(max_length=max_length))
        with atomic_file(report.path) as tmp:
            tmp.write_text(result.markdown(), encoding="utf-8")
        print(result.summary())
        core.raise_on_failure(result)
        with atomic_file(validated.path) as tmp:
            shutil.copyfile(dataset.path, tmp)
    validated.metadata.update(
        lineage(path=validated.path, parents={"dataset": dataset.uri}, rows=result.rows, format="jsonl")
    )
    report.metadata.update({"parents": {"dataset": dataset.uri}, "passed": result.success})
    metrics.log_metric("rows", result.rows)
    metrics.log_metric("expectations_evaluated", result.evaluated)
    metrics.log_metric("expectations_failed", len(result.failures))
