"""Deterministic demo assets: a tiny pretrained Llama, a locally trained BPE tokenizer with a ChatML chat template,
and a word-reversal task as instruction records and as multi-turn chat records.

The base model is fully trained for a short while on generic word tasks (copy, sort, rotate) so that it
knows the words and the answer format; reversal is never shown to it. A LoRA fine-tune on the reversal
dataset then measurably beats the base model on exact match, which is what the demo pipeline's gate checks.
Nothing is downloaded: the tokenizer is trained with ``tokenizers`` and the model is built from a config.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from kfp_llmops.errors import ConfigError

WORDS = (
    "apple bird cake door egg fish goat hat ink jam kite lamp moon nest owl pear "
    "queen rose sun tree urn vase wolf box yarn zoo cup dog fox map pen star"
).split()

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>")
# ChatML, as Qwen2.5 and many instruct models use it: the demo runs the chat-template path of every stage.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SYSTEM_PROMPT = "You rearrange words as asked."


@dataclass(frozen=True)
class DemoAssetsConfig:
    """What ``kfp-llmops demo-assets`` builds; every field has the default the demo uses."""

    seed: int = 0
    min_words: int = 3
    max_words: int = 6
    train_rows: int = 2000
    eval_rows: int = 100
    pretrain_rows: int = 6000
    pretrain_steps: int = 300
    pretrain_batch_size: int = 64
    pretrain_learning_rate: float = 3e-3
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    tokenizer_vocab_size: int = 320

    def __post_init__(self) -> None:
        if not 1 <= self.min_words <= self.max_words:
            raise ConfigError(f"DemoAssetsConfig: need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        for name in ("train_rows", "eval_rows", "pretrain_rows", "pretrain_steps", "pretrain_batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"DemoAssetsConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError("DemoAssetsConfig: hidden_size must divide by num_heads, and num_heads by num_kv_heads")


TASKS = {
    "copy": lambda words: words,
    "sort": sorted,
    "rotate": lambda words: words[1:] + words[:1],
    "reverse": lambda words: words[::-1],
}
PRETRAIN_TASKS = ("copy", "sort", "rotate")
FINETUNE_TASK = "reverse"


def make_record(task: str, rng: random.Random, cfg: DemoAssetsConfig) -> dict[str, str]:
    words = rng.sample(WORDS, rng.randint(cfg.min_words, cfg.max_words))
    return {"instruction": f"{task}: {' '.join(words)}", "response": " ".join(TASKS[task](words))}


def make_records(task_names: tuple[str, ...], n: int, rng: random.Random, cfg: DemoAssetsConfig, exclude=frozenset()):
    records, seen = [], set(exclude)
    while len(records) < n:
        rec = make_record(rng.choice(task_names), rng, cfg)
        if rec["instruction"] not in seen:
            seen.add(rec["instruction"])
            records.append(rec)
    return records


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts``, wrapped for ``transformers``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.add_tokens(["system", "user", "assistant"])  # one token per role name, as in real ChatML vocabularies
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def chat_records(records: list[dict], turns: int = 2) -> list[dict]:
    """Multi-turn conversations from instruction records, ``turns`` exchanges each; every other one starts with a
    system turn."""
    out = []
    for k in range(0, len(records) - turns + 1, turns):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}] if (k // turns) % 2 == 0 else []
        for r in records[k : k + turns]:
            messages += [{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["response"]}]
        out.append({"messages": messages})
    return out


def build_model(cfg: DemoAssetsConfig, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)


def build_demo_assets(out_dir: str | Path, cfg: DemoAssetsConfig | None = None, log=print) -> dict:
    """Writes ``base-model/`` (model + tokenizer with its chat template), ``train.jsonl``, ``eval.jsonl`` (instruction
    records), ``train_chat.jsonl``, ``eval_chat.jsonl`` (the same task as two-turn conversations) and ``assets.json``
    to ``out_dir``. The base is pretrained in the chat template's format."""
    import torch

    from kfp_llmops.configs import TrainConfig
    from kfp_llmops.prompts import PromptFormat
    from kfp_llmops.training import Trainer

    cfg = cfg or DemoAssetsConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    eval_records = make_records((FINETUNE_TASK,), cfg.eval_rows, rng, cfg)
    train_records = make_records((FINETUNE_TASK,), cfg.train_rows, rng, cfg, {r["instruction"] for r in eval_records})
    pretrain_records = make_records(PRETRAIN_TASKS, cfg.pretrain_rows, rng, cfg)

    corpus = [f"{r['instruction']}\n{r['response']}" for r in pretrain_records + train_records]
    tokenizer = train_tokenizer(corpus, cfg.tokenizer_vocab_size)
    model = build_model(cfg, tokenizer)
    fmt = PromptFormat.resolve(tokenizer)  # the chat template
    examples = fmt.encode_many(tokenizer, [(r["instruction"], r["response"]) for r in pretrain_records], 64)
    pretrain = TrainConfig(max_steps=cfg.pretrain_steps, batch_size=cfg.pretrain_batch_size, seed=cfg.seed,
                           learning_rate=cfg.pretrain_learning_rate, warmup_steps=cfg.pretrain_steps // 10,
                           pack_length=-1, precision="fp32")  # packed rows (attention per document): fewer padded slots

    def progress(run) -> None:
        if len(run.losses) % 50 == 0:
            log(f"pretrain step {len(run.losses)}/{cfg.pretrain_steps} loss {run.losses[-1]:.4f}")

    losses = Trainer(model, pretrain, pad_id=tokenizer.pad_token_id, on_step=progress).setup(examples).train().losses

    tmp_model_dir = out / "base-model.tmp"
    model.save_pretrained(tmp_model_dir, safe_serialization=True)
    tokenizer.save_pretrained(tmp_model_dir)
    from kfp_llmops.lineage import umask_permissions

    umask_permissions(tmp_model_dir)  # save_pretrained writes model.safetensors 0600: steps in containers read it
    final_model_dir = out / "base-model"
    if final_model_dir.exists():
        import shutil

        shutil.rmtree(final_model_dir)
    tmp_model_dir.replace(final_model_dir)
    write_jsonl(out / "train.jsonl", train_records)
    write_jsonl(out / "eval.jsonl", eval_records)
    write_jsonl(out / "train_chat.jsonl", chat_records(train_records))
    write_jsonl(out / "eval_chat.jsonl", chat_records(eval_records))
    summary = {
        "config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "pretrain_final_loss": losses[-1],
        "base_model": str(final_model_dir),
        "train": str(out / "train.jsonl"),
        "eval": str(out / "eval.jsonl"),
        "train_chat": str(out / "train_chat.jsonl"),
        "eval_chat": str(out / "eval_chat.jsonl"),
    }
    (out / "assets.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
