import pytest

from kfp_llmops.components.data.prepare_dataset import core
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import IGNORE_INDEX
from kfp_llmops.prompts import format_prompt


def test_labels_cover_only_the_response_and_eos(tokenizer):
    [example] = core.prepare([("reverse: cat dog", "dog cat")] * 2, tokenizer).train
    prompt_len = len(tokenizer(format_prompt("reverse: cat dog"), add_special_tokens=False)["input_ids"])
    assert example.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    answer = example.labels[prompt_len:]
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer[:-1]) == "dog cat"
    assert example.input_ids[prompt_len:] == answer


def test_split_is_seeded_and_sized(tokenizer, tmp_path):
    pairs = [(f"copy: w{i}", f"w{i}") for i in range(50)]
    a = core.prepare(pairs, tokenizer, core.PrepareConfig(validation_fraction=0.2, seed=1))
    b = core.prepare(pairs, tokenizer, core.PrepareConfig(validation_fraction=0.2, seed=1))
    assert (len(a.train), len(a.validation)) == (40, 10)
    assert a == b
    core.write_prepared(a, tmp_path)
    assert core.read_prepared(tmp_path) == a
    assert a.stats()["train_rows"] == 40


def test_truncates_to_max_length(tokenizer):
    prepared = core.prepare([("copy: " + "apple " * 40, "apple " * 40)] * 3, tokenizer, core.PrepareConfig(max_length=16))
    assert all(len(e.input_ids) == 16 == len(e.labels) for e in prepared.train)


def test_bad_config_and_too_few_rows(tokenizer):
    with pytest.raises(ConfigError, match="validation_fraction"):
        core.PrepareConfig(validation_fraction=1.5)
    with pytest.raises(UserInputError, match="at least 2 rows"):
        core.prepare([("a", "b")], tokenizer)
