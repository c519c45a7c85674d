"""LoRA fine-tuning with peft on any causal LM ``from_pretrained`` loads; never imports kfp."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

from kfp_llmops.configs import TrainConfig
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.examples import Example
from kfp_llmops.modeling import check_compiler, check_quantization, load_causal_lm, response_nll, weight_dtype
from kfp_llmops.tokenized import Truncated


@dataclass
class TrainResult:
    model: object
    losses: list[float]
    validation_loss: float
    trainable_parameters: int
    seconds: float
    real_tokens: int = 0
    token_slots: int = 0
    evaluations: list = dataclasses.field(default_factory=list)
    learning_rates: list = dataclasses.field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        tail = self.losses[-10:]
        return {
            "train_loss_first": self.losses[0],
            "train_loss_final": sum(tail) / len(tail),
            "validation_loss": self.validation_loss,
            "trainable_parameters": self.trainable_parameters,
            "steps": len(self.losses),
            "train_seconds": self.seconds,
            "tokens_seen": self.real_tokens,
            "tokens_per_second": self.real_tokens / self.seconds if self.seconds else 0.0,
            "padding_efficiency": self.real_tokens / self.token_slots if self.token_slots else 0.0,
            "evaluations": len(self.evaluations),
        }


def attach_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"TrainConfig.target_modules={cfg.target_modules!r} does not fit the model: {exc}") from None


def train(
    base_model: str,
    train_examples: Sequence[Example],
    validation_examples: Sequence[Example],
    cfg: TrainConfig,
    *,
    pad_id: int,
    log: Callable[[str], None] = print,
    tracker=None,
) -> TrainResult:
    """``tracker`` (:func:`kfp_llmops.tracking.open_tracker`) receives loss, learning rate, tokens/s and peak memory
    every step and the validation loss at each evaluation, while training runs."""
    if not train_examples:
        raise UserInputError("the training split is empty")
    import torch

    torch.manual_seed(cfg.seed)
    cuda = torch.cuda.is_available()
    bf16_supported = cuda and torch.cuda.is_bf16_supported()
    precision = cfg.resolved_precision(cuda, bf16_supported)
    dtype = weight_dtype(cfg.base_dtype, cuda=cuda, bf16_supported=bf16_supported)
    check_quantization(cfg.quantization, cuda=cuda)
    check_compiler(cfg.torch_compile, cuda=cuda)
    if cfg.memory_check:
        from kfp_llmops.components.training.train_lora import memory

        memory.check(base_model, cfg, cuda=cuda, log=log, weight_dtype="nf4" if cfg.quantization == "nf4" else dtype)
    base = load_causal_lm(base_model, dtype=dtype, quantization=cfg.quantization)
    if cfg.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.use_liger:
        apply_liger(base)
    if cfg.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = attach_lora(base, cfg)
    if cfg.quantization == "none":  # a quantized base is placed on the GPU as it loads
        model = model.to("cuda" if cuda else "cpu")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = "nf4" if cfg.quantization == "nf4" else dtype
    log(f"LoRA r={cfg.r} on {cfg.target_modules}: {trainable} trainable parameters (fp32) on {weights} base weights; "
        f"{'cuda' if cuda else 'cpu'}, {precision}, attention {getattr(base.config, '_attn_implementation', 'default')}"
        + (", gradient checkpointing" if cfg.gradient_checkpointing else ""))
    if cfg.max_seq_length:
        train_examples = Truncated(train_examples, cfg.max_seq_length)  # lazy: a memory-mapped split stays on disk
        validation_examples = Truncated(validation_examples, cfg.max_seq_length)
    from kfp_llmops.tracking import NullTracker, peak_memory_mb
    from kfp_llmops.training import Trainer, TrainingRun

    tracker = tracker or NullTracker()
    total = cfg.total_steps(len(train_examples))
    every = max(1, total // 10)
    start = time.perf_counter()

    def on_step(run: TrainingRun) -> None:
        elapsed, step = time.perf_counter() - start, len(run.losses)
        tps = run.real_tokens / elapsed if elapsed else 0.0
        tracker.log_step(step, loss=run.losses[-1], learning_rate=run.learning_rates[-1], tokens_per_second=tps,
                         peak_memory_mb=peak_memory_mb())
        if step % every == 0 or step == 1:
            eta = elapsed / step * (total - step)
            log(f"step {step}/{total} loss {run.losses[-1]:.4f} tokens/s {tps:.0f} elapsed {elapsed:.1f}s eta {eta:.1f}s")

    def validate() -> float:
        value = _mean_nll(model, validation_examples, pad_id)
        tracker.log_step(len(trainer.run.losses), validation_loss=value)
        return value

    trainer = Trainer(model, cfg, pad_id=pad_id, log=log, on_step=on_step,
                      validate=validate if validation_examples else None).setup(train_examples)
    run = trainer.train()
    seconds = time.perf_counter() - start
    nll, count = response_nll(model, validation_examples, pad_id=pad_id)
    tracker.log_step(len(run.losses), final_validation_loss=nll / max(1, count))
    tracker.flush()
    return TrainResult(model, run.losses, nll / max(1, count), trainable, seconds, run.real_tokens, run.token_slots,
                       run.evaluations, run.learning_rates)


@contextlib.contextmanager
def tracked(uri: str, model_name: str, cfg: TrainConfig, *, base_model: str, dataset_sha256: str = "",
            log: Callable[[str], None] = print):
    """An MLflow run for one training (a NullTracker when ``uri`` is no MLflow store) with the config as parameters;
    ended FINISHED, or FAILED when training raises."""
    from kfp_llmops.tracking import open_tracker

    tracker = open_tracker(uri, model_name=model_name or "llm", run_name=f"train-{model_name or 'llm'}",
                           params={**cfg.to_dict(), "base_model": base_model},
                           tags={"base_model": base_model, "dataset_sha256": dataset_sha256}, log=log)
    try:
        yield tracker
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")


def _mean_nll(model, examples: list[Example], pad_id: int) -> float:
    nll, count = response_nll(model, examples, pad_id=pad_id)
    return nll / max(1, count)


def adapter_state(model) -> dict:
    """The LoRA weights, whole, from a model sharded by FSDP (a collective: every rank calls it)."""
    from kfp_llmops.modeling import full_state

    return full_state(model, keep=lambda name: "lora_" in name)


def apply_liger(model) -> None:
    """Liger's fused kernels (RMSNorm, SwiGLU, RoPE, fused linear cross-entropy) on the loaded model."""
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError:
        raise ConfigError("TrainConfig.use_liger=True but liger-kernel is not installed in this image") from None
    _apply_liger_kernel_to_instance(model=model)


def save_adapter(result: TrainResult, cfg: TrainConfig, out_dir: str | Path, state_dict: dict | None = None) -> None:
    """Saves the adapter as safetensors with the training config and loss history beside it; ``state_dict``: the
    adapter weights gathered whole (:func:`adapter_state`) when the model is sharded."""
    out = Path(out_dir)
    result.model.save_pretrained(out, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
    config = out / "adapter_config.json"  # peft writes target_modules from a set: sort it, so the bytes are reproducible
    values = json.loads(config.read_text(encoding="utf-8"))
    if isinstance(values.get("target_modules"), list):
        values["target_modules"] = sorted(values["target_modules"])
    config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "training_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "losses.json").write_text(json.dumps(result.losses) + "\n", encoding="utf-8")
    history = {"loss": result.losses, "learning_rate": result.learning_rates,
               "validation": [list(e) for e in result.evaluations], "final_validation_loss": result.validation_loss}
    (out / "history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
