import json

import pandas as pd
import pytest

from kfp_llmops.datasets import DatasetSpec, Table, instruction_pairs, read_jsonl, read_table, records, write_canonical_jsonl
from kfp_llmops.errors import ConfigError, UserInputError

ROWS = [{"instruction": "a", "response": "b"}, {"instruction": "c", "input": "ctx", "response": "d"}]


def _write(tmp_path, data: bytes, name="d.jsonl"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_jsonl_rows_keep_their_line_numbers_skipping_blank_lines(tmp_path):
    p = _write(tmp_path, b'{"instruction": "a", "response": "b"}\n\n{"instruction": "c", "response": "d"}\n')
    table = read_jsonl(p)
    assert table.lines == [1, 3] and table.record_format == "instruction" and table.file_format == "jsonl"
    assert instruction_pairs(table) == [("a", "b"), ("c", "d")]


def test_csv_parquet_and_arrow_read_the_same_records(tmp_path):
    import pyarrow as pa

    frame = pd.DataFrame(ROWS)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    table = pa.Table.from_pandas(frame)
    for name, writer in (("stream.arrow", pa.ipc.new_stream), ("file.arrow", pa.ipc.new_file)):  # both IPC formats
        with writer(str(tmp_path / name), table.schema) as w:
            w.write_table(table)
    tables = [read_table(str(tmp_path / n)) for n in ("d.csv", "d.parquet", "stream.arrow", "file.arrow")]
    assert [t.file_format for t in tables] == ["csv", "parquet", "arrow", "arrow"]
    assert tables[0].lines == [2, 3] and tables[1].lines == tables[2].lines == tables[3].lines == [1, 2]
    for t in tables:
        assert instruction_pairs(t) == [("a", "b"), ("c\nctx", "d")]


def test_column_names_are_mappable(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    table = read_table(DatasetSpec(str(p), columns={"instruction": "prompt", "response": "completion"}))
    assert instruction_pairs(table) == [("a", "b")]


def test_chat_records_are_detected(tmp_path):
    p = tmp_path / "chat.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    table = read_table(str(p))
    assert table.record_format == "chat" and list(table.frame.columns) == ["messages"]


SHAREGPT = [
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "system": "Be brief."},
    {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
     "system": "ignored: the conversation has its own"},
    {"conversations": [{"from": "human", "value": "w?"}, {"from": "observation", "value": "sun"}, {"from": "gpt", "value": "s"}]},
]
SHAREGPT_MESSAGES = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    [{"role": "user", "content": "w?"}, {"role": "observation", "content": "sun"}, {"role": "assistant", "content": "s"}],
]


def test_sharegpt_records_are_read_as_chat_in_jsonl_and_parquet(tmp_path):
    p = tmp_path / "sg.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in SHAREGPT) + "\n")
    pd.DataFrame(SHAREGPT).to_parquet(tmp_path / "sg.parquet")  # lists of structs come back as numpy arrays of dicts
    for path in (p, tmp_path / "sg.parquet"):
        table = read_table(str(path))
        assert (table.record_format, table.source_record_format) == ("chat", "sharegpt")
        assert list(table.frame.columns) == ["messages"] and list(table.frame["messages"]) == SHAREGPT_MESSAGES
        assert table.lines == [1, 2, 3]
        assert records(Table(table.path, table.file_format, "chat", table.frame.iloc[:2], table.lines[:2])) == SHAREGPT_MESSAGES[:2]


def test_trl_prompt_completion_records_plain_and_conversational(tmp_path):
    p = tmp_path / "pc.jsonl"
    p.write_text(json.dumps({"prompt": "Say hi.", "completion": "Hi."}) + "\n")
    table = read_table(str(p))
    assert (table.record_format, table.source_record_format) == ("instruction", "prompt-completion")
    assert instruction_pairs(table) == [("Say hi.", "Hi.")]
    rows = [{"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
             "completion": [{"role": "assistant", "content": "a"}]},
            {"prompt": "not a list", "completion": [{"role": "assistant", "content": "b"}]}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows[:1]).to_parquet(tmp_path / "pc.parquet")
    for path in (p, tmp_path / "pc.parquet"):
        table = read_table(str(path))
        assert (table.record_format, table.source_record_format) == ("chat", "prompt-completion")
        assert records(Table(table.path, "jsonl", "chat", table.frame.iloc[:1], table.lines[:1])) == [rows[0]["prompt"] + rows[0]["completion"]]
    with pytest.raises(UserInputError, match=rf"{p}:2: 'messages' must be a non-empty list"):
        records(read_table(str(p)))


def test_text_content_parts_are_joined_and_other_parts_left_for_validation(tmp_path):
    parts = [{"type": "text", "text": "Name "}, {"type": "text", "text": "three colours."}]
    image = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    rows = [{"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "Red, green, blue."}]},
            {"messages": [{"role": "user", "content": image}, {"role": "assistant", "content": "A cat."}]}]
    p = tmp_path / "parts.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answer = [{"type": "text", "text": "Red, green, blue."}]  # Parquet: one type per column, parts in every message
    pd.DataFrame([{"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": answer}]}]).to_parquet(
        tmp_path / "parts.parquet")
    for path in (p, tmp_path / "parts.parquet"):
        table = read_table(str(path))
        first = [{"role": "user", "content": "Name three colours."}, {"role": "assistant", "content": "Red, green, blue."}]
        assert records(Table(table.path, "jsonl", "chat", table.frame.iloc[:1], table.lines[:1])) == [first]
    assert list(read_table(str(p)).frame["messages"])[1] == rows[1]["messages"]  # an image part: as it was
    with pytest.raises(UserInputError, match=rf"{p}:2: message 1 must have a role .* and a string content"):
        records(read_table(str(p)))


def test_sharegpt_under_other_names_or_mapped_onto_messages(tmp_path):
    p = tmp_path / "sg.jsonl"
    p.write_text(json.dumps({"dialog": SHAREGPT[0]["conversations"], "sys": "Be brief."}) + "\n")
    table = read_table(DatasetSpec(str(p), columns={"conversations": "dialog", "system": "sys"}))
    assert list(table.frame["messages"]) == SHAREGPT_MESSAGES[:1]
    p.write_text(json.dumps({"conversations": SHAREGPT[0]["conversations"]}) + "\n")
    table = read_table(DatasetSpec(str(p), columns={"messages": "conversations"}))  # {from, value} items: ShareGPT
    assert table.source_record_format == "sharegpt" and list(table.frame["messages"]) == [SHAREGPT_MESSAGES[0][1:]]
    with pytest.raises(UserInputError, match=r"missing column\(s\) \['messages'\] for chat records.*ShareGPT"):
        read_table(DatasetSpec(str(p), record_format="chat"))


def test_byte_order_mark_is_accepted_in_jsonl_and_csv(tmp_path):
    p = _write(tmp_path, b'\xef\xbb\xbf{"instruction": "a", "response": "b"}\n')
    assert instruction_pairs(read_jsonl(p)) == [("a", "b")]
    c = _write(tmp_path, b"\xef\xbb\xbfinstruction,response\na,b\n", "d.csv")
    assert instruction_pairs(read_table(str(c))) == [("a", "b")]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("d.jsonl", b'{"instruction": "a", "response": "b"}\n{"instruction": \n', r"d.jsonl:2: malformed JSON"),
        ("d.jsonl", b'{"instruction": "a", "response": "\xff"}\n', r"d.jsonl:1: not valid UTF-8"),
        ("d.jsonl", b"", r"d.jsonl: the file has no records"),
        ("d.jsonl", b"[1, 2]\n", r"d.jsonl:1: expected a JSON object, got list"),
        ("d.csv", b"instruction,response\n", r"d.csv: the file has no records \(only a header\)"),
        ("d.csv", b"instruction,response\na,b\nc,\xff\n", r"d.csv:3: not valid UTF-8"),
        ("d.csv", b"", r"d.csv: the file is empty"),
        ("d.parquet", b"PAR1 not really", r"d.parquet: cannot read Parquet"),
        ("d.arrow", b"ARROW1 not really", r"d.arrow: cannot read Arrow IPC"),
        ("d.jsonl", b'{"instruction": "a"}\n', r"missing column\(s\) \['response'\] for instruction records; the file has \['instruction'\]"),
        ("d.txt", b"x", r"cannot tell the file format from the suffix"),
    ],
)
def test_bad_files_say_what_and_where(tmp_path, name, data, message):
    with pytest.raises(UserInputError, match=message):
        read_table(str(_write(tmp_path, data, name)))


def test_a_folder_of_shards_is_one_table_located_by_shard_and_line(tmp_path):
    # a Hugging Face dataset repository's layout: README, metadata JSON, hidden files and data/<split>-N-of-M shards
    (tmp_path / "data").mkdir()
    (tmp_path / "README.md").write_text("# my dataset\n")
    (tmp_path / "dataset_info.json").write_text("{}")
    (tmp_path / ".gitattributes").write_text("*.parquet filter=lfs\n")
    pd.DataFrame(ROWS[:1]).to_parquet(tmp_path / "data" / "train-00000-of-00002.parquet")
    pd.DataFrame(ROWS[1:]).to_parquet(tmp_path / "data" / "train-00001-of-00002.parquet")
    table = read_table(str(tmp_path))
    assert (table.file_format, table.record_format, len(table)) == ("parquet", "instruction", 2)
    assert read_table(DatasetSpec(str(tmp_path), file_format="parquet")).lines == table.lines
    assert table.lines == ["data/train-00000-of-00002.parquet:1", "data/train-00001-of-00002.parquet:1"]
    assert table.where(1) == f"{tmp_path}/data/train-00001-of-00002.parquet:1"
    assert instruction_pairs(table) == [("a", "b"), ("c\nctx", "d")]
    out = tmp_path / "canonical.jsonl"
    write_canonical_jsonl(table, out)
    assert [json.loads(line) for line in out.read_text().splitlines()] == ROWS


def test_a_folder_says_what_it_lacks_or_mixes_and_errors_name_the_shard(tmp_path):
    with pytest.raises(UserInputError, match=r"a folder with no jsonl/csv/parquet/arrow files \(0 other file"):
        read_table(str(tmp_path))
    (tmp_path / "dataset_info.json").write_text('{\n  "description": ""\n}\n')  # metadata, never a shard
    (tmp_path / "a.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "b.csv").write_text("instruction,response\nq,r\n")
    with pytest.raises(UserInputError, match=r"a folder of csv and jsonl files; pass file_format"):
        read_table(str(tmp_path))
    assert instruction_pairs(read_table(DatasetSpec(str(tmp_path), file_format="csv"))) == [("q", "r")]
    (tmp_path / "b.csv").unlink()
    (tmp_path / "c.jsonl").write_text(json.dumps(ROWS[0]) + "\n{\n")
    with pytest.raises(UserInputError, match=r"c.jsonl:2: malformed JSON"):
        read_table(str(tmp_path))
    with pytest.raises(UserInputError, match=r"c.jsonl:2: malformed JSON"):  # not dataset_info.json, with jsonl given
        read_table(DatasetSpec(str(tmp_path), file_format="jsonl"))
    (tmp_path / "c.jsonl").write_text(json.dumps({"instruction": "x", "response": 3}) + "\n")
    with pytest.raises(UserInputError, match=rf"{tmp_path}/c.jsonl:1: field 'response' is missing or not a string"):
        instruction_pairs(read_table(str(tmp_path)))


def test_save_to_disk_folders_are_read_one_split_at_a_time(tmp_path):
    datasets = pytest.importorskip("datasets")
    chat = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    rows = [{"input": "", **ROWS[0]}, ROWS[1]]  # from_list takes its columns from the first row
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(chat)}).save_to_disk(tmp_path / "dd")
    with pytest.raises(UserInputError, match=r"the folder holds several splits \(test: test/data-00000-of-00001.arrow; "
                                             r"train: train/data-00000-of-00001.arrow\); pass a folder with one split"):
        read_table(str(tmp_path / "dd"))
    train = read_table(str(tmp_path / "dd" / "train"))  # Arrow IPC stream, beside state.json and dataset_info.json
    assert (train.file_format, train.lines) == ("arrow", ["data-00000-of-00001.arrow:1", "data-00000-of-00001.arrow:2"])
    assert instruction_pairs(train) == [("a", "b"), ("c\nctx", "d")]
    test = read_table(str(tmp_path / "dd" / "test" / "data-00000-of-00001.arrow"))  # one file; messages as structs
    assert test.record_format == "chat" and records(test) == [chat[0]["messages"]]


def test_a_repository_layout_with_train_and_test_shards_is_refused_naming_them(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("train-00000-of-00002", "train-00001-of-00002", "test-00000-of-00001"):
        pd.DataFrame(ROWS).to_parquet(tmp_path / "data" / f"{name}.parquet")
    with pytest.raises(UserInputError, match=r"several splits \(test: data/test-00000-of-00001.parquet; train: "
                                             r"data/train-00000-of-00002.parquet, data/train-00001-of-00002.parquet\)"):
        read_table(str(tmp_path))
    (tmp_path / "data" / "test-00000-of-00001.parquet").unlink()
    assert len(read_table(str(tmp_path))) == 4
    pd.DataFrame(ROWS).to_parquet(tmp_path / "data" / "train_gen-00000-of-00001.parquet")  # ultrachat_200k's splits
    with pytest.raises(UserInputError, match=r"several splits \(train: .*; train_gen: data/train_gen-00000-of-00001"):
        read_table(str(tmp_path))


def test_steps_read_artifacts_as_jsonl_and_imported_files_by_their_suffix(tmp_path):
    artifact = _write(tmp_path, b'{"instruction": "a", "response": "b"}\n', name="validated")  # no suffix
    assert instruction_pairs(read_jsonl(artifact)) == [("a", "b")]
    pd.DataFrame(ROWS).to_parquet(tmp_path / "eval.parquet")
    assert instruction_pairs(read_jsonl(tmp_path / "eval.parquet")) == [("a", "b"), ("c\nctx", "d")]
    (tmp_path / "shards").mkdir()
    pd.DataFrame(ROWS).to_csv(tmp_path / "shards" / "eval-0.csv", index=False)
    assert len(read_jsonl(tmp_path / "shards")) == 2


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(UserInputError, match="no such file"):
        read_table(str(tmp_path / "nope.jsonl"))


def test_non_string_field_names_line_and_field(tmp_path):
    p = _write(tmp_path, b'{"instruction": "a", "response": "b"}\n{"instruction": "a", "response": 3}\n')
    with pytest.raises(UserInputError, match=r"d.jsonl:2: field 'response' is missing or not a string"):
        instruction_pairs(read_jsonl(p))


def test_spec_is_validated():
    with pytest.raises(ConfigError, match="file_format"):
        DatasetSpec("x", file_format="xlsx")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['prompt'\]"):
        DatasetSpec("x", columns={"prompt": "p"})


def test_canonical_jsonl_round_trips(tmp_path):
    frame = pd.DataFrame(ROWS)
    frame.to_parquet(tmp_path / "d.parquet")
    write_canonical_jsonl(read_table(str(tmp_path / "d.parquet")), tmp_path / "out.jsonl")
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == ROWS
