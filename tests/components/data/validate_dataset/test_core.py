import json
import re

import pytest

from kfp_llmops.components.data.validate_dataset import core
from kfp_llmops.components.data.validate_dataset.report import render_html
from kfp_llmops.datasets import read_jsonl, read_table
from kfp_llmops.errors import ConfigError, UserInputError


def _validate(tmp_path, write_jsonl, rows, cfg=None, name="d.jsonl"):
    return core.validate_table(read_table(str(write_jsonl(tmp_path / name, rows))), cfg)


def _failed(result):
    return {(c.check, c.field): (c.severity, c.lines) for c in result.failures}


def test_demo_training_data_passes(demo_assets):
    result = core.validate_table(read_jsonl(demo_assets / "train.jsonl"))
    assert result.success and not result.failures, result.summary()
    assert result.rows == 2000
    assert len(result.checks) == 9  # 2 type checks + 3 per required field + duplicates
    assert result.gx_result["success"] is True


def test_missing_response_names_expectation_field_and_line(tmp_path, write_jsonl):
    rows = [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(20)]
    del rows[6]["response"]
    result = _validate(tmp_path, write_jsonl, rows)
    assert not result.success
    assert _failed(result) == {("expect_column_values_to_not_be_null", "response"): ("critical", [7])}
    assert re.search(r"not_be_null failed on field 'response': 1 row\(s\); line\(s\) 7", result.summary())


def test_blank_values_numbers_and_duplicates_are_each_reported(tmp_path, write_jsonl):
    rows = [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(10)]
    rows[1]["response"] = "   "
    rows[2]["instruction"] = 42
    rows[5] = dict(rows[4])
    result = _validate(tmp_path, write_jsonl, rows)
    assert _failed(result) == {
        ("expect_column_values_to_not_match_regex", "response"): ("critical", [2]),
        ("expect_column_values_to_be_strings", "instruction"): ("critical", [3]),
        ("expect_compound_columns_to_be_unique", "instruction+response"): ("warning", [5, 6]),
    }
    assert "| critical | expect_column_values_to_be_strings | instruction | 1 | 3 | [42] |" in result.markdown()


def test_warnings_alone_let_the_data_pass(tmp_path, write_jsonl):
    rows = [{"instruction": "q", "response": "a"}] * 3
    result = _validate(tmp_path, write_jsonl, rows)
    assert result.success and [c.severity for c in result.failures] == ["warning"]
    assert result.metrics()["failed_rows.expect_compound_columns_to_be_unique.instruction+response"] == 3


def test_length_bounds_and_a_huge_record(tmp_path, write_jsonl):
    rows = [{"instruction": "q" * n, "response": "a"} for n in (1, 5, 50_000_000)]
    result = _validate(tmp_path, write_jsonl, rows, core.ValidationConfig(max_length=10))
    [failure] = result.failures
    assert (failure.check, failure.field, failure.lines) == ("expect_column_value_lengths_to_be_between", "instruction", [3])
    assert failure.examples == ["q" * 60 + "... (50000000 chars)"]


def test_a_user_suite_with_severities(tmp_path, write_jsonl):
    suite = {"name": "mine", "expectations": [
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "response", "max_value": 2}, "severity": "warning"},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "instruction", "regex": "^q"}},
    ]}
    rows = [{"instruction": "q1", "response": "abc"}, {"instruction": "x", "response": "a"}]
    result = _validate(tmp_path, write_jsonl, rows, core.ValidationConfig(suite=suite))
    assert _failed(result) == {
        ("expect_column_value_lengths_to_be_between", "response"): ("warning", [1]),
        ("expect_column_values_to_match_regex", "instruction"): ("critical", [2]),
    }
    assert not result.success


def test_a_suite_naming_a_missing_column_or_a_bad_expectation_is_an_input_error(tmp_path, write_jsonl):
    rows = [{"instruction": "q", "response": "a"}]
    bad_column = {"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "answer"}}]}
    with pytest.raises(UserInputError, match=r"names column 'answer', which the dataset lacks"):
        _validate(tmp_path, write_jsonl, rows, core.ValidationConfig(suite=bad_column))
    bad_type = {"name": "s", "expectations": [{"type": "expect_nothing", "kwargs": {}}]}
    with pytest.raises(UserInputError, match=r"suite 's' is not a valid GX suite"):
        _validate(tmp_path, write_jsonl, rows, core.ValidationConfig(suite=bad_type))


def test_chat_records(tmp_path, write_jsonl):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    rows = [
        good,
        {"messages": [{"role": "user", "content": "hi"}]},  # no answer
        {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]},  # unknown role, last not assistant
        {"messages": "not a list"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
        {"messages": [{"role": "user", "content": "w?"}, {"role": "tool", "content": "sun"}, {"role": "assistant", "content": "s"}]},
    ]
    result = _validate(tmp_path, write_jsonl, rows, name="chat.jsonl")
    assert result.record_format == "chat"
    failed = _failed(result)
    assert failed[("expect_messages_to_be_role_content_lists", "messages")] == ("critical", [4])
    assert failed[("expect_column_values_to_be_in_set", "messages.last_role")] == ("critical", [2, 3, 4])
    assert failed[("expect_column_values_to_be_in_set", "messages.unknown_roles")] == ("critical", [3, 6])  # tool: not prepared
    unknown = next(c for c in result.failures if c.field == "messages.unknown_roles")
    assert unknown.examples == ["roles 'robot'", "roles 'tool'"]
    assert failed[("expect_column_values_to_be_in_set", "messages.empty_contents")] == ("critical", [5])
    assert failed[("expect_column_values_to_be_between", "messages.count")] == ("critical", [2, 4])


def test_html_report_lists_every_check_and_escapes_values(tmp_path, write_jsonl):
    rows = [{"instruction": "<script>x</script>", "response": "a"}, {"instruction": "q"}]
    result = _validate(tmp_path, write_jsonl, rows)
    html = render_html(result)
    assert html.count("<tr class=") == len(result.checks)
    assert "<script>x" not in html
    assert "FAILED" in html and "expect_column_values_to_not_be_null" in html
    json.dumps(result.gx_result, default=str)


def test_config_is_validated_where_it_is_built():
    with pytest.raises(ConfigError, match="min_length <= max_length"):
        core.ValidationConfig(min_length=5, max_length=2)
    with pytest.raises(ConfigError, match="duplicates_severity"):
        core.ValidationConfig(duplicates_severity="fatal")
