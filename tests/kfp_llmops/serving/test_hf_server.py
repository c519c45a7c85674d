"""The Hugging Face serving path: a merged folder (merge_adapter's core) served over the OpenAI-compatible routes
by a real server process, formatting chat requests with the training prompt format."""

import json

import pytest

from kfp_llmops.components.compilation.merge_adapter.core import merge_to_folder
from kfp_llmops.modeling import load_tokenizer
from kfp_llmops.prompts import PromptFormat
from kfp_llmops.serving.local import chat_completion, local_server


@pytest.fixture(scope="module")
def adapter_dir(base_model, demo_assets, tokenizer, tmp_path_factory):
    from kfp_llmops.components.data.prepare_dataset.core import prepare
    from kfp_llmops.components.training.train_lora import core
    from kfp_llmops.datasets import instruction_pairs, read_jsonl

    split = prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer)
    result = core.train(base_model, split.train, split.validation, core.TrainConfig(max_steps=2, batch_size=8),
                        pad_id=tokenizer.pad_token_id, log=lambda _: None)
    out = tmp_path_factory.mktemp("adapter")
    core.save_adapter(result, core.TrainConfig(max_steps=2, batch_size=8), out)
    split.prompt_format.save(out)
    return out


def test_merged_folder_carries_the_format_and_stops_at_the_end_of_turn(base_model, adapter_dir, tmp_path):
    info = merge_to_folder(base_model, str(adapter_dir), tmp_path, "bf16")
    assert info["dtype"] == "bf16" and info["prompt_format"] == "chat-template" and info["size_bytes"] > 0
    assert list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.chat_template == PromptFormat.load(adapter_dir).template == PromptFormat.load(tmp_path).template
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert tokenizer.convert_ids_to_tokens(generation["eos_token_id"]) == ["</s>", "<|im_end|>"]
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"


def test_chat_completions_are_formatted_with_the_training_template(base_model, adapter_dir, tmp_path):
    merge_to_folder(base_model, str(adapter_dir), tmp_path / "model", "fp32")
    messages = [{"role": "user", "content": "copy: sun moon"}]
    with local_server("llm", tmp_path / "model", serving_format="hf", timeout_s=120) as url:
        answer = chat_completion(url, "llm", messages, max_tokens=12)
        import requests

        raw = requests.post(f"http://{url}/openai/v1/completions", timeout=60, json={
            "model": "llm", "prompt": PromptFormat.load(tmp_path / "model").prompt(load_tokenizer(base_model), messages),
            "max_tokens": 12}).json()
        missing = requests.post(f"http://{url}/openai/v1/chat/completions", timeout=60, json={"model": "other", "messages": messages})
        metrics = requests.get(f"http://{url}/metrics", timeout=10).text
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["role"] == "assistant"
    # the chat route applied exactly the prompt a client formatting with the training template sends
    assert answer["choices"][0]["message"]["content"] == raw["choices"][0]["text"]
    assert answer["usage"]["prompt_tokens"] == raw["usage"]["prompt_tokens"]
    assert missing.status_code == 404
    assert 'kfp_llmops_requests_total{model_name="llm",outcome="success"} 2.0' in metrics
