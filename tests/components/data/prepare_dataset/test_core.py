import pytest

from kfp_llmops.components.data.prepare_dataset import core
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.examples import IGNORE_INDEX
from kfp_llmops.tokenized import TRAIN_FILE, read_prepared, write_prepared
from kfp_llmops.prompts import PromptFormat


def test_labels_cover_only_the_response_and_what_ends_it(tokenizer):
    [example] = core.prepare([("reverse: cat dog", "dog cat")] * 2, tokenizer).train
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "reverse: cat dog"}], tokenize=False,
                                           add_generation_prompt=True)  # the demo tokenizer's ChatML template
    prompt_len = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert example.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    answer = example.labels[prompt_len:]
    assert tokenizer.decode(answer) == "dog cat<|im_end|>\n"
    assert example.input_ids[prompt_len:] == answer


def test_plain_format_is_the_instruction_a_newline_the_response_and_eos(tokenizer):
    [example] = core.prepare([("reverse: cat dog", "dog cat")] * 2, tokenizer, core.PrepareConfig(prompt_format="plain")).train
    assert tokenizer.decode(example.input_ids) == "reverse: cat dog\ndog cat</s>"
    answer = [t for t in example.labels if t != IGNORE_INDEX]
    assert answer[-1] == tokenizer.eos_token_id and tokenizer.decode(answer[:-1]) == "dog cat"


def test_split_is_seeded_and_sized_and_keeps_its_format(tokenizer, tmp_path):
    pairs = [(f"copy: w{i}", f"w{i}") for i in range(50)]
    a = core.prepare(pairs, tokenizer, core.PrepareConfig(validation_fraction=0.2, seed=1, system_prompt="Be brief."))
    b = core.prepare(pairs, tokenizer, core.PrepareConfig(validation_fraction=0.2, seed=1, system_prompt="Be brief."))
    assert (len(a.train), len(a.validation)) == (40, 10)
    assert a == b
    write_prepared(a, tmp_path)
    assert read_prepared(tmp_path) == a
    assert PromptFormat.load(tmp_path) == PromptFormat(tokenizer.chat_template, "chat-template", "Be brief.")
    assert a.stats()["train_rows"] == 40 and a.stats()["prompt_format"] == "chat-template"


def test_truncates_to_max_length(tokenizer):
    prepared = core.prepare([("copy: " + "apple " * 40, "apple " * 40)] * 3, tokenizer, core.PrepareConfig(max_length=16))
    assert all(len(e.input_ids) == 16 == len(e.labels) for e in prepared.train)


def test_bad_config_and_too_few_rows(tokenizer):
    with pytest.raises(ConfigError, match="validation_fraction"):
        core.PrepareConfig(validation_fraction=1.5)
    with pytest.raises(UserInputError, match="at least 2 rows"):
        core.prepare([("a", "b")], tokenizer)
    with pytest.raises(ConfigError, match="prompt_format must be one of"):
        core.prepare([("a", "b")] * 3, tokenizer, core.PrepareConfig(prompt_format="chatml"))


def test_a_record_the_template_refuses_is_named(tokenizer):
    strict = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
              "{% endif %}{{ m['content'] }}\n{% endfor %}")
    records = [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
               [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]
    with pytest.raises(UserInputError, match=r"train.jsonl:7: the custom prompt format cannot render this conversation: .*System role not supported"):
        core.prepare(records, tokenizer, core.PrepareConfig(prompt_format=strict), where=["train.jsonl:3", "train.jsonl:7"])


def test_streamed_preparation_writes_what_the_in_memory_one_does(tokenizer, demo_assets, tmp_path):
    """prepare_file (the component's path) streams chunks of rows: same split, same bytes, chat and instruction."""
    from kfp_llmops.datasets import locations, read_jsonl, records

    for name in ("train.jsonl", "train_chat.jsonl"):
        table = read_jsonl(demo_assets / name)
        write_prepared(core.prepare(records(table), tokenizer, where=locations(table)), tmp_path / "memory")
        stats = core.prepare_file(demo_assets / name, tokenizer, tmp_path / "streamed", chunk_rows=97, workers=2)
        core.prepare_file(demo_assets / name, tokenizer, tmp_path / "one-process", chunk_rows=97, workers=1)
        for f in ("train.arrow", "validation.arrow", "prompt_format.json"):
            assert (tmp_path / "streamed" / f).read_bytes() == (tmp_path / "memory" / f).read_bytes(), (name, f)
            assert (tmp_path / "one-process" / f).read_bytes() == (tmp_path / "memory" / f).read_bytes(), (name, f)
        assert stats == read_prepared(tmp_path / "streamed").stats()


def test_streamed_preparation_names_a_bad_record(tokenizer, tmp_path):
    bad = tmp_path / "data.jsonl"
    bad.write_text('{"instruction": "a", "response": "b"}\n{"instruction": "a"}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"data.jsonl:2: expected a chat record \(messages\) or an instruction record"):
        core.prepare_file(bad, tokenizer, tmp_path / "out")
    strict = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
              "{% endif %}{{ m['content'] }}\n{% endfor %}")
    bad.write_text('{"instruction": "a", "response": "b"}\n' * 3 + '{"messages": [{"role": "system", "content": "s"}, '
                   '{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"data.jsonl:4: the custom prompt format cannot render this conversation"):
        core.prepare_file(bad, tokenizer, tmp_path / "out2", core.PrepareConfig(prompt_format=strict), chunk_rows=1,
                          workers=2)  # raised in a worker process, named as in one process


def test_prepared_splits_are_columnar_and_memory_mapped(tokenizer, tmp_path):
    """Arrow IPC files any Arrow reader opens; read back as a lazy sequence of examples over the mapped file."""
    import pyarrow as pa

    pairs = [(f"copy: w{i} " * (1 + i % 5), f"w{i}") for i in range(3 * 8192 // 2)]  # more rows than one record batch
    prepared = core.prepare(pairs, tokenizer, core.PrepareConfig(validation_fraction=0.1))
    write_prepared(prepared, tmp_path)
    table = pa.ipc.open_file(pa.memory_map(str(tmp_path / TRAIN_FILE))).read_all()
    assert table.schema.names == ["input_ids", "labels"] and str(table.schema.field("labels").type) == "list<item: int32>"
    assert table.num_rows == len(prepared.train) and table.column("input_ids")[5].as_py() == prepared.train[5].input_ids
    back = read_prepared(tmp_path)
    assert len(back.train) == len(prepared.train) and back.train[-1] == prepared.train[-1] and back.train[8200] == prepared.train[8200]
    assert back.train[3:6] == prepared.train[3:6] and back.stats() == prepared.stats()


def test_a_folder_that_is_not_prepared_data_is_named(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"input_ids": [1], "labels": [1]}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"not a prepared dataset: train.arrow, validation.arrow missing \(train.jsonl is"):
        read_prepared(tmp_path)
    (tmp_path / "train.arrow").write_bytes(b"not arrow")
    (tmp_path / "validation.arrow").write_bytes(b"")
    with pytest.raises(UserInputError, match="train.arrow: not a tokenized-examples Arrow file"):
        read_prepared(tmp_path)
