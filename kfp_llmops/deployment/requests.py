"""What a served model is asked in a rollout, a staging test or a shadow stage: the evaluation prompts in the format
the model takes (token ids for ONNX over protocol v2; chat messages for the OpenAI-compatible formats), and how a
registered version's files are served. Never imports kfp."""

from __future__ import annotations

from pathlib import Path


def served_format(folder: str | Path) -> str:
    """How a registered version's files are served: ``adapter`` (a peft LoRA folder), ``hf`` (a merged model folder)
    or ``onnx`` (a Triton repository)."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        return "adapter"
    return "hf" if (folder / "config.json").is_file() else "onnx"


def replay_requests(eval_path: str, tokenizer_path: str, limit: int = 64) -> list[tuple]:
    """The requests the local rollout replays: the evaluation prompts in the served model's prompt format (saved
    beside its tokenizer), tokenized as the model expects them."""
    from kfp_llmops.datasets import read_jsonl, records
    from kfp_llmops.modeling import load_tokenizer
    from kfp_llmops.prompts import PromptFormat, split_reference

    tokenizer = load_tokenizer(tokenizer_path)
    fmt = PromptFormat.load(tokenizer_path)
    out = []
    for item in records(read_jsonl(eval_path))[:limit]:
        enc = tokenizer([fmt.prompt(tokenizer, split_reference(item)[0])], return_tensors="np", add_special_tokens=False)
        out.append((enc["input_ids"], enc["attention_mask"]))
    return out


def replay_messages(eval_path: str, limit: int = 64) -> list[list[dict]]:
    """The chat requests the local rollout replays for ``serving_format: hf``: each evaluation record's conversation
    before its answer, as messages (the server applies the model's chat template, as KServe's runtime does)."""
    from kfp_llmops.datasets import read_jsonl, records
    from kfp_llmops.prompts import PromptFormat, split_reference

    plain = PromptFormat()
    out = []
    for item in records(read_jsonl(eval_path))[:limit]:
        context = split_reference(item)[0]
        out.append(plain.conversation(context) if isinstance(context, str) else list(context))
    return out
