"""`kfp-llmops validate`: exit 0 passed, 1 critical failure, 2 unreadable input; messages say what and where."""

import json

import pytest

from kfp_llmops.cli import main
from kfp_llmops.cli.submit import add_content_digest
from kfp_llmops.lineage import sha256_path

GOOD = b'{"instruction": "q1", "response": "a1"}\n{"instruction": "q2", "response": "a2"}\n'


def _run(capsys, *argv):
    code = main(["validate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_clean_dataset_passes_and_writes_reports(tmp_path, capsys, demo_assets):
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, demo_assets / "train.jsonl", "--eval-set", demo_assets / "eval.jsonl",
                           "--reference", demo_assets / "train.jsonl", "--out", out)
    assert code == 0
    assert "2000 instruction rows" in stdout and "0 critical" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["gx_result.json", "metrics.json", "report.html", "validated.jsonl"]
    assert json.loads((out / "metrics.json").read_text())["rows_out"] == 2000


def test_a_critical_failure_exits_1_and_writes_no_data(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_bytes(GOOD + b'{"instruction": "q3"}\n')
    code, stdout, _ = _run(capsys, data, "--out", tmp_path / "out")
    assert code == 1
    assert "[critical] expect_column_values_to_not_be_null failed on field 'response': 1 row(s); line(s) 3" in stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gx_result.json", "metrics.json", "report.html"]


def test_a_user_suite_and_column_mapping(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("prompt,completion\nq1,a1\nq2,a22\n")
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "mine", "expectations": [
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "response", "max_value": 2}}]}))
    code, stdout, _ = _run(capsys, data, "--suite", suite, "--column", "instruction=prompt", "--column", "response=completion")
    assert code == 1 and "line(s) 3" in stdout


BAD_INPUTS = [
    ("malformed.jsonl", GOOD + b'{"instruction": "q3", "response": \n', "malformed.jsonl:3: malformed JSON"),
    ("latin1.jsonl", GOOD + b'{"instruction": "caf\xe9", "response": "a"}\n', "latin1.jsonl:3: not valid UTF-8"),
    ("empty.jsonl", b"", "empty.jsonl: the file has no records"),
    ("header.csv", b"instruction,response\n", "header.csv: the file has no records (only a header)"),
    ("columns.jsonl", b'{"prompt": "q", "answer": "a"}\n', "missing column(s) ['instruction', 'response']"),
]


@pytest.mark.parametrize("name, data, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_unreadable_inputs_exit_2_with_what_and_where_and_change_nothing(tmp_path, capsys, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    before = sha256_path(path)
    code, _, err = _run(capsys, path, "--out", tmp_path / "out")
    assert code == 2
    assert message in err and "Traceback" not in err
    assert sha256_path(path) == before
    assert not (tmp_path / "out").exists()


def test_byte_order_mark_and_numbers_where_strings_belong(tmp_path, capsys):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD + b'{"instruction": 42, "response": "a"}\n')
    code, stdout, _ = _run(capsys, path)
    assert code == 1
    assert "expect_column_values_to_be_strings failed on field 'instruction': 1 row(s); line(s) 3; value(s) [42]" in stdout


@pytest.mark.slow  # ~35 s: in make test-all
def test_a_50_mb_record_is_reported_by_length_not_printed(tmp_path, capsys):
    path = tmp_path / "big.jsonl"
    path.write_bytes(GOOD + json.dumps({"instruction": "x" * 50_000_000, "response": "a"}).encode() + b"\n")
    code, stdout, _ = _run(capsys, path)
    assert code == 1
    assert "expect_column_value_lengths_to_be_between failed on field 'instruction': 1 row(s); line(s) 3" in stdout
    assert "(50000000 chars)" in stdout and len(stdout) < 10_000


def test_a_folder_without_data_files_is_named(tmp_path, capsys):
    (tmp_path / "README.md").write_text("# notes\n")
    code, _, err = _run(capsys, tmp_path)
    assert code == 2 and f"{tmp_path}: a folder with no jsonl/csv/parquet/arrow files (1 other file(s))" in err


def test_a_bad_screening_config_exits_2(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD)
    code, _, err = _run(capsys, path, "--screening", '{"pii": {"action": "explode"}}')
    assert code == 2 and "ScreeningConfig.pii.action must be one of" in err


def test_run_pins_the_digest_of_a_local_training_file(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_bytes(GOOD)
    assert add_content_digest({"train_data": str(data)})["train_data_sha256"] == sha256_path(data)
    assert "train_data_sha256" not in add_content_digest({"train_data": "gs://bucket/train.jsonl"})
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.jsonl").write_bytes(GOOD)
    assert add_content_digest({"train_data": str(shards)})["train_data_sha256"] == sha256_path(shards)
