import json

import pandas as pd
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from kfp_llmops.components.data.validate_dataset.component import validate_dataset
from kfp_llmops.lineage import sha256_path


def _outputs(tmp_path):
    out = tmp_path / "out"
    return dict(validated=Dataset(uri=str(out / "validated")), report=HTML(uri=str(out / "report")),
                gx_result=Artifact(uri=str(out / "gx")), metrics=Metrics(uri=str(out / "metrics")))


def test_passes_canonical_jsonl_on_with_lineage(tmp_path, demo_assets):
    outs = _outputs(tmp_path)
    source = Dataset(uri=str(demo_assets / "train.jsonl"))
    assert validate_dataset.python_func(dataset=source, **outs) is True
    meta = outs["validated"].metadata
    assert sha256_path(outs["validated"].path) == sha256_path(source.path)  # the demo file is canonical already
    assert meta["sha256"] == meta["source_sha256"] == sha256_path(source.path)
    assert (meta["rows"], meta["format"], meta["record_format"], meta["schema"]) == (2000, "jsonl", "instruction", ["instruction", "response"])
    assert meta["parents"] == {"dataset": source.uri} and meta["validation_passed"] is True
    assert outs["metrics"].metadata["critical_failures"] == 0
    assert "PASSED" in (tmp_path / "out" / "report").read_text()
    assert json.loads((tmp_path / "out" / "gx").read_text())["success"] is True


def test_parquet_with_other_column_names_becomes_canonical_jsonl(tmp_path):
    pd.DataFrame({"prompt": ["a", "b"], "answer": ["x", "y"]}).to_parquet(tmp_path / "d.parquet")
    outs = _outputs(tmp_path)
    ok = validate_dataset.python_func(dataset=Dataset(uri=str(tmp_path / "d.parquet")), columns={"instruction": "prompt", "response": "answer"}, **outs)
    assert ok is True
    lines = (tmp_path / "out" / "validated").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"instruction": "a", "response": "x"}, {"instruction": "b", "response": "y"}]
    assert outs["validated"].metadata["source_format"] == "parquet"


def test_sharegpt_records_become_canonical_chat_jsonl(tmp_path, write_jsonl, read_jsonl):
    turns = [{"from": "human", "value": "What is 2 plus 3?"}, {"from": "gpt", "value": "5."}]
    rows = [{"conversations": turns, "system": "You add."}, {"conversations": turns[:1] + [{"from": "gpt", "value": "Five."}]}]
    outs = _outputs(tmp_path)
    assert validate_dataset.python_func(dataset=Dataset(uri=str(write_jsonl(tmp_path / "sg.jsonl", rows))), **outs) is True
    assert read_jsonl(outs["validated"].path) == [
        {"messages": [{"role": "system", "content": "You add."}, {"role": "user", "content": "What is 2 plus 3?"},
                      {"role": "assistant", "content": "5."}]},
        {"messages": [{"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": "Five."}]}]
    meta = outs["validated"].metadata
    assert (meta["record_format"], meta["source_record_format"], meta["schema"]) == ("chat", "sharegpt", ["messages"])
    # a role that chat templates do not know (a tool call) fails validation at its line
    rows.append({"conversations": turns[:1] + [{"from": "function_call", "value": "{}"}, {"from": "gpt", "value": "x"}]})
    outs = _outputs(tmp_path)
    assert validate_dataset.python_func(dataset=Dataset(uri=str(write_jsonl(tmp_path / "sg.jsonl", rows))), **outs) is False
    assert "field 'messages.unknown_roles': 1 row(s); line(s) 3; value(s) [\"roles 'function_call'\"]" in outs["report"].metadata["summary"]


def test_a_folder_of_shards_is_validated_as_one_dataset_by_shard_and_line(tmp_path, write_jsonl, read_jsonl):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "part-0.jsonl", [{"instruction": "q1", "response": "a1"}, {"instruction": "q2", "response": "a2"}])
    write_jsonl(shards / "part-1.jsonl", [{"instruction": "q3", "response": "a3"}, {"instruction": "q1", "response": "a1"}])
    outs = _outputs(tmp_path)
    assert validate_dataset.python_func(dataset=Dataset(uri=str(shards)), **outs) is True
    assert read_jsonl(outs["validated"].path) == [{"instruction": f"q{i}", "response": f"a{i}"} for i in (1, 2, 3)]
    summary = outs["report"].metadata["summary"]
    assert "screen_exact_duplicates failed on field 'all text': 1 row(s); dropped; line(s) part-1.jsonl:2" in summary
    assert "same as line part-0.jsonl:1" in summary
    meta = outs["validated"].metadata
    assert (meta["rows"], meta["source_rows"], meta["source_format"]) == (3, 4, "jsonl")
    assert meta["source_sha256"] == sha256_path(shards)
    write_jsonl(shards / "part-2.jsonl", [{"instruction": "q4"}])
    outs = _outputs(tmp_path)
    assert validate_dataset.python_func(dataset=Dataset(uri=str(shards)), **outs) is False
    assert "field 'response': 1 row(s); line(s) part-2.jsonl:1" in outs["report"].metadata["summary"]


def test_a_critical_failure_returns_false_and_keeps_the_reports(tmp_path, write_jsonl):
    rows = [{"instruction": "q1", "response": "a"}, {"instruction": "q2"}]
    outs = _outputs(tmp_path)
    assert validate_dataset.python_func(dataset=Dataset(uri=str(write_jsonl(tmp_path / "bad.jsonl", rows))), **outs) is False
    assert outs["report"].metadata["passed"] is False
    assert "expect_column_values_to_not_be_null failed on field 'response': 1 row(s); line(s) 2" in outs["report"].metadata["summary"]
    assert "FAILED" in (tmp_path / "out" / "report").read_text()
    assert outs["validated"].metadata["validation_passed"] is False


def test_unreadable_input_exits_with_file_and_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "response": "a"}\n{oops}\n')
    with pytest.raises(SystemExit) as exited:
        validate_dataset.python_func(dataset=Dataset(uri=str(bad)), **_outputs(tmp_path))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert f"ERROR: {bad}:2: malformed JSON" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_file_changed_after_submission_is_refused(tmp_path, demo_assets, capsys):
    with pytest.raises(SystemExit):
        validate_dataset.python_func(dataset=Dataset(uri=str(demo_assets / "train.jsonl")), expected_sha256="0" * 64,
                                     **_outputs(tmp_path))
    assert "differs from the expected " + "0" * 64 in capsys.readouterr().err


def test_contamination_with_the_eval_set_drops_rows_and_records_parents(tmp_path, demo_assets, write_jsonl, read_jsonl):
    train = read_jsonl(demo_assets / "train.jsonl")[:50] + read_jsonl(demo_assets / "eval.jsonl")[:2]
    outs = _outputs(tmp_path)
    eval_ds = Dataset(uri=str(demo_assets / "eval.jsonl"))
    assert validate_dataset.python_func(dataset=Dataset(uri=str(write_jsonl(tmp_path / "t.jsonl", train))), eval_dataset=eval_ds, **outs)
    meta = outs["validated"].metadata
    assert (meta["rows"], meta["source_rows"]) == (50, 52)
    assert meta["parents"]["eval_dataset"] == eval_ds.uri
    assert outs["metrics"].metadata["failed_rows.screen_eval_contamination.all text"] == 2
