"""The prompt format: how records become text and labels, on the demo tokenizer (ChatML chat template)."""

import json

import pytest

from kfp_llmops.datasets import read_table, records
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.examples import IGNORE_INDEX
from kfp_llmops.prompts import PLAIN_TEMPLATE, PromptFormat, split_reference

CONVERSATION = [
    {"role": "system", "content": "You rearrange words as asked."},
    {"role": "user", "content": "reverse: sun moon"},
    {"role": "assistant", "content": "moon sun"},
    {"role": "user", "content": "reverse: cup pen owl"},
    {"role": "assistant", "content": "owl pen cup"},
]


def labelled_text(tokenizer, example) -> str:
    return "".join(tokenizer.decode([t]) if label != IGNORE_INDEX else "_" for t, label in zip(example.input_ids, example.labels))


def test_multi_turn_labels_cover_exactly_the_assistant_tokens(tokenizer):
    fmt = PromptFormat.resolve(tokenizer)
    assert fmt.kind == "chat-template" and fmt.template == tokenizer.chat_template
    example = fmt.encode(tokenizer, CONVERSATION, 256)
    text = tokenizer.decode(example.input_ids)
    assert text == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    learned = [tokenizer.decode([t]) for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    # both assistant turns, each with the end-of-turn token and the newline the template puts after it; nothing else
    assert "".join(learned) == "moon sun<|im_end|>\n" + "owl pen cup<|im_end|>\n"
    masked = "".join(tokenizer.decode([t]) for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX)
    assert masked == ("<|im_start|>system\nYou rearrange words as asked.<|im_end|>\n<|im_start|>user\nreverse: sun moon"
                      "<|im_end|>\n<|im_start|>assistant\n<|im_start|>user\nreverse: cup pen owl<|im_end|>\n"
                      "<|im_start|>assistant\n")
    assert [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX] == \
        [label for label in example.labels if label != IGNORE_INDEX]
    # evaluation scores the final turn only
    last = fmt.encode(tokenizer, CONVERSATION, 256, last_only=True)
    assert tokenizer.decode([label for label in last.labels if label != IGNORE_INDEX]) == "owl pen cup<|im_end|>\n"


def test_generation_prompt_and_stop_tokens(tokenizer):
    fmt = PromptFormat.resolve(tokenizer)
    context, reference = split_reference(CONVERSATION)
    assert reference == "owl pen cup"
    assert fmt.prompt(tokenizer, context).endswith("reverse: cup pen owl<|im_end|>\n<|im_start|>assistant\n")
    assert fmt.prompt(tokenizer, "copy: sun") == "<|im_start|>user\ncopy: sun<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.convert_ids_to_tokens(fmt.stop_token_ids(tokenizer)) == ["</s>", "<|im_end|>"]
    plain = PromptFormat.resolve(tokenizer, "plain")
    assert plain.prompt(tokenizer, "copy: sun") == "copy: sun\n"
    assert plain.stop_token_ids(tokenizer) == [tokenizer.eos_token_id]


def test_system_prompt_goes_first_unless_the_conversation_has_one(tokenizer):
    fmt = PromptFormat.resolve(tokenizer, "auto", system_prompt="Be brief.")
    assert fmt.prompt(tokenizer, "hi").startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi")
    assert "Be brief." not in fmt.render(tokenizer, fmt.conversation(CONVERSATION))


def test_custom_template_and_choices(tokenizer):
    custom = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    fmt = PromptFormat.resolve(tokenizer, custom)
    assert fmt.kind == "custom" and fmt.prompt(tokenizer, "hi") == "[user] hi\n[assistant] "
    example = fmt.encode(tokenizer, ("hi", "yo"), 64)
    assert tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX]) == "yo\n"
    assert PromptFormat.resolve(tokenizer, "plain").template == PLAIN_TEMPLATE
    with pytest.raises(ConfigError, match="prompt_format must be one of"):
        PromptFormat.resolve(tokenizer, "chatml")
    with pytest.raises(ConfigError, match="does not render message contents"):
        PromptFormat.resolve(tokenizer, "{{ 'nothing' }}")


def test_chat_template_requested_from_a_tokenizer_without_one(tokenizer):
    import copy

    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    with pytest.raises(ConfigError, match="the tokenizer has no chat template"):
        PromptFormat.resolve(bare, "chat-template")
    assert PromptFormat.resolve(bare).kind == "plain"


def test_a_template_that_rewrites_earlier_turns_is_refused_with_the_reason(tokenizer):
    # like templates that drop earlier turns' reasoning: an assistant turn renders differently once it is not the last
    rewriting = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}(earlier answer)"
                 "{% else %}{{ m['content'] }}{% endif %}\n{% endfor %}")
    fmt = PromptFormat.resolve(tokenizer, rewriting)
    fmt.encode(tokenizer, ("hi", "yo"), 64)  # one turn: fine
    with pytest.raises(UserInputError, match="record 1: .*renders earlier turns differently once a later turn is added"):
        fmt.encode_many(tokenizer, [CONVERSATION], 256)


def test_saved_with_the_tokenizer_and_loaded_back(tokenizer, tmp_path):
    fmt = PromptFormat.resolve(tokenizer, "plain", system_prompt="s")
    fmt.save_with(tokenizer, tmp_path)
    assert PromptFormat.load(tmp_path) == fmt
    from kfp_llmops.modeling import load_tokenizer

    assert load_tokenizer(str(tmp_path)).chat_template == fmt.template  # what a server that formats chat would use
    assert tokenizer.chat_template != fmt.template  # the tokenizer object is left as it was
    assert PromptFormat.load(tmp_path / "nothing-here") == PromptFormat()  # adapters from before formats: plain


def test_chat_records_are_read_and_bad_messages_named(tmp_path):
    good = tmp_path / "chat.jsonl"
    good.write_text(json.dumps({"messages": CONVERSATION}) + "\n", encoding="utf-8")
    assert records(read_table(str(good))) == [CONVERSATION]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": CONVERSATION}) + "\n"
                   + json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad.jsonl:2: message 1 must have a role \(system, user or assistant\)"):
        records(read_table(str(bad)))
    with pytest.raises(UserInputError, match="must end with an assistant turn"):
        split_reference(CONVERSATION[:-1])
