import pytest

from kfp_llmops.components.data.validate_dataset import core
from kfp_llmops.datasets import read_jsonl
from kfp_llmops.errors import ConfigError, UserInputError


def test_demo_training_data_passes(demo_assets):
    result = core.validate_records(read_jsonl(demo_assets / "train.jsonl"))
    assert result.success, result.summary()
    assert result.rows == 2000
    assert result.evaluated == 11


def test_missing_response_names_expectation_field_and_line(tmp_path, write_jsonl):
    rows = [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(20)]
    del rows[6]["response"]
    result = core.validate_records(read_jsonl(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert not result.success
    [failure] = result.failures
    assert (failure.expectation, failure.field, failure.lines) == ("expect_column_values_to_not_be_null", "response", [7])
    with pytest.raises(UserInputError, match=r"not_be_null failed on field 'response': 1 row\(s\); line\(s\) 7"):
        core.raise_on_failure(result)


def test_blank_values_numbers_and_duplicates_are_each_reported(tmp_path, write_jsonl):
    rows = [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(10)]
    rows[1]["response"] = "   "
    rows[2]["instruction"] = 42
    rows[5] = dict(rows[4])
    result = core.validate_records(read_jsonl(write_jsonl(tmp_path / "d.jsonl", rows)))
    found = {(f.expectation, f.field): f.lines for f in result.failures}
    assert found == {
        ("expect_column_values_to_not_match_regex", "response"): [2],
        ("expect_column_values_to_be_strings", "instruction"): [3],
        ("expect_compound_columns_to_be_unique", "instruction+response"): [5, 6],
    }
    assert "| expect_column_values_to_be_strings | instruction | 1 | 3 | [42] |" in result.markdown()


def test_a_column_missing_everywhere_is_reported_once_per_expectation(tmp_path, write_jsonl):
    rows = [{"instruction": f"q{i}"} for i in range(3)]
    result = core.validate_records(read_jsonl(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert ("expect_column_to_exist", "response") in {(f.expectation, f.field) for f in result.failures}


def test_length_bounds(tmp_path, write_jsonl):
    rows = [{"instruction": "q" * n, "response": "a"} for n in (1, 5, 50)]
    result = core.validate_records(read_jsonl(write_jsonl(tmp_path / "d.jsonl", rows)), core.ValidationConfig(max_length=10))
    [failure] = result.failures
    assert (failure.expectation, failure.field, failure.lines) == ("expect_column_value_lengths_to_be_between", "instruction", [3])


def test_config_is_validated_where_it_is_built():
    with pytest.raises(ConfigError, match="min_length <= max_length"):
        core.ValidationConfig(min_length=5, max_length=2)
