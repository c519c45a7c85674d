"""Side-by-side evaluation of a candidate (base + LoRA adapter) and a baseline model; never imports kfp."""

from __future__ import annotations

import math
from dataclasses import dataclass

from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import encode_example, greedy_answers, load_causal_lm, response_nll


@dataclass(frozen=True)
class EvalConfig:
    max_new_tokens: int = 32
    max_length: int = 256
    batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_length", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"EvalConfig.{name} must be > 0, got {getattr(self, name)!r}")


def load_candidate(base_model: str, adapter_dir: str):
    """The base model with the LoRA adapter applied (not merged)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(load_causal_lm(base_model), adapter_dir)


def evaluate(model, tokenizer, pairs: list[tuple[str, str]], cfg: EvalConfig | None = None) -> dict:
    """Perplexity of the reference responses and exact match of greedy answers."""
    cfg = cfg or EvalConfig()
    if not pairs:
        raise UserInputError("the evaluation set is empty")
    examples = [encode_example(tokenizer, i, r, cfg.max_length) for i, r in pairs]
    nll, count = response_nll(model, examples, pad_id=tokenizer.pad_token_id, batch_size=cfg.batch_size)
    answers = greedy_answers(
        model, tokenizer, [i for i, _ in pairs], max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
    )
    hits = [a == r.strip() for a, (_, r) in zip(answers, pairs)]
    return {
        "perplexity": math.exp(nll / max(1, count)),
        "exact_match": sum(hits) / len(hits),
        "examples": len(pairs),
        "answers": answers,
    }


def compare(candidate: dict, baseline: dict) -> dict[str, float]:
    """The flat scalars a Metrics artifact and the gate read: ``candidate_*``, ``baseline_*`` and ``delta_*``."""
    out: dict[str, float] = {}
    for key in ("perplexity", "exact_match"):
        out[f"candidate_{key}"] = candidate[key]
        out[f"baseline_{key}"] = baseline[key]
        out[f"delta_{key}"] = candidate[key] - baseline[key]
    out["examples"] = candidate["examples"]
    return out


def report_markdown(scores: dict[str, float], pairs, candidate: dict, baseline: dict, shown: int = 5) -> str:
    lines = [
        "# Evaluation: candidate vs baseline",
        "",
        "| metric | candidate | baseline | delta |",
        "|---|---|---|---|",
    ]
    for key in ("exact_match", "perplexity"):
        lines.append(
            f"| {key} | {scores[f'candidate_{key}']:.4f} | {scores[f'baseline_{key}']:.4f} | {scores[f'delta_{key}']:+.4f} |"
        )
    lines += ["", f"Examples ({shown} of {len(pairs)}):", "", "| instruction | reference | candidate | baseline |", "|---|---|---|---|"]
    for (instruction, reference), c, b in list(zip(pairs, candidate["answers"], baseline["answers"]))[:shown]:
        lines.append(f"| {instruction} | {reference} | {c} | {b} |")
    return "\n".join(lines) + "\n"
