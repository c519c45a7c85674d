import pytest
from kfp.dsl import Dataset, Markdown, Metrics

from kfp_llmops.components.data.validate_dataset.component import validate_dataset
from kfp_llmops.lineage import sha256_path


def _outputs(tmp_path):
    return Dataset(uri=str(tmp_path / "out" / "validated")), Markdown(uri=str(tmp_path / "out" / "report")), Metrics(uri=str(tmp_path / "out" / "metrics"))


def test_passes_the_dataset_on_with_lineage(tmp_path, demo_assets):
    validated, report, metrics = _outputs(tmp_path)
    source = Dataset(uri=str(demo_assets / "train.jsonl"))
    validate_dataset.python_func(dataset=source, validated=validated, report=report, metrics=metrics)
    assert sha256_path(validated.path) == sha256_path(source.path)
    assert validated.metadata["sha256"] == sha256_path(source.path)
    assert validated.metadata["rows"] == 2000
    assert validated.metadata["parents"] == {"dataset": source.uri}
    assert metrics.metadata["expectations_failed"] == 0
    assert "PASSED" in (tmp_path / "out" / "report").read_text()


def test_failure_exits_with_the_report_and_writes_no_dataset(tmp_path, write_jsonl, capsys):
    rows = [{"instruction": "q1", "response": "a"}, {"instruction": "q2"}]
    source = Dataset(uri=str(write_jsonl(tmp_path / "bad.jsonl", rows)))
    validated, report, metrics = _outputs(tmp_path)
    with pytest.raises(SystemExit) as exited:
        validate_dataset.python_func(dataset=source, validated=validated, report=report, metrics=metrics)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "ERROR: data validation failed:" in err
    assert "expect_column_values_to_not_be_null failed on field 'response': 1 row(s); line(s) 2" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "validated").exists()
    assert "FAILED" in (tmp_path / "out" / "report").read_text()
