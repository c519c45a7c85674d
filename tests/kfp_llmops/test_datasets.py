import pytest

from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.errors import UserInputError


def _write(tmp_path, data: bytes):
    p = tmp_path / "d.jsonl"
    p.write_bytes(data)
    return p


def test_reads_rows_with_their_line_numbers_skipping_blank_lines(tmp_path):
    p = _write(tmp_path, b'{"instruction": "a", "response": "b"}\n\n{"instruction": "c", "response": "d"}\n')
    records = read_jsonl(p)
    assert records.lines == [1, 3]
    assert instruction_pairs(records) == [("a", "b"), ("c", "d")]


def test_byte_order_mark_is_accepted(tmp_path):
    p = _write(tmp_path, b'\xef\xbb\xbf{"instruction": "a", "response": "b"}\n')
    assert read_jsonl(p).rows == [{"instruction": "a", "response": "b"}]


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"instruction": "a", "response": "b"}\n{"instruction": \n', r"d.jsonl:2: malformed JSON"),
        (b'{"instruction": "a", "response": "\xff"}\n', r"d.jsonl:1: not valid UTF-8"),
        (b"", r"d.jsonl: the file has no records"),
        (b"[1, 2]\n", r"d.jsonl:1: expected a JSON object, got list"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, data, message):
    with pytest.raises(UserInputError, match=message):
        read_jsonl(_write(tmp_path, data))


def test_a_directory_or_missing_file_is_named(tmp_path):
    with pytest.raises(UserInputError, match="is a directory"):
        read_jsonl(tmp_path)
    with pytest.raises(UserInputError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_missing_or_non_string_field_names_line_and_field(tmp_path):
    p = _write(tmp_path, b'{"instruction": "a", "response": "b"}\n{"instruction": "a", "response": 3}\n')
    with pytest.raises(UserInputError, match=r"d.jsonl:2: field 'response' is missing or not a string"):
        instruction_pairs(read_jsonl(p))
