"""The training loop as a small recipe (torchtune style): :class:`Trainer` is set up once (parallelism, optimizer,
schedule, data order, a resumed checkpoint), trains step by step with its state on the object, and returns a typed
:class:`TrainingRun`. It reads :class:`~kfp_llmops.configs.TrainConfig`'s own fields; never imports kfp.

Deterministic for a fixed seed on CPU: batches are drawn from a seeded shuffle, epoch after epoch. With
``checkpoint_dir``, a checkpoint is written every ``checkpoint_every`` steps, and a restarted run resumes from the
latest complete one (parameters, optimizer, scheduler, RNG and data position), ending where an uninterrupted run
would. ``pack_length`` > 0 packs each batch's examples into rows of that many tokens with per-document isolation (the
same loss, fewer padded slots); -1 packs into rows as long as the batch's longest example. On CPU, an ``sdpa`` model
attends per packed document (:mod:`kfp_llmops.packed_attention`: the same sums, none of the masked-out pairs
computed) and rows take the fewest slots; otherwise the block-diagonal mask is computed in full and rows are chosen by
their estimated cost (:func:`~kfp_llmops.modeling.pack`) with the model's attention width (``pack_attention_width``
overrides either choice; 0: the fewest slots). ``gradient_accumulation`` micro-batches make one optimizer step.
``precision`` bf16 runs forward and loss under autocast (weights and optimizer stay fp32). ``validate`` (a validation
loss) runs every ``eval_every`` steps; after ``early_stopping_patience`` evaluations without improvement training
stops, and the best evaluated weights are restored at the end. Under torchrun, ``strategy`` ddp replicates the model;
fsdp shards parameters, gradients and optimizer state (FSDP2 per decoder layer, then the root). ``torch_compile``:
each decoder layer through ``torch.compile`` (the same losses, faster steps after the first, which compiles).
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from kfp_llmops.configs import TrainConfig
from kfp_llmops.errors import ConfigError
from kfp_llmops.examples import Example
from kfp_llmops.modeling import attention_width, collate, collate_packed, compiled_layers, pack, shard


@dataclass
class TrainingRun:
    """What a run measured: per-step losses and learning rates, (step, validation loss) evaluations, and the real
    tokens against the token slots they took (padding efficiency)."""

    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    evaluations: list[tuple[int, float]] = field(default_factory=list)
    real_tokens: int = 0
    token_slots: int = 0


class Trainer:
    """``Trainer(model, cfg, pad_id=...).setup(examples)``, then ``train()``: AdamW and a cosine schedule with warmup
    on the model's trainable parameters. ``on_step`` sees the run after every step."""

    def __init__(self, model, cfg: TrainConfig, *, pad_id: int, log: Callable[[str], None] = lambda _: None,
                 on_step: Callable[[TrainingRun], None] | None = None, validate: Callable[[], float] | None = None,
                 pack_attention_width: float | None = None):
        self.model, self.cfg, self.pad_id, self.log = model, cfg, pad_id, log
        self.on_step, self.validate, self.attention_width = on_step, validate, pack_attention_width
        self.run = TrainingRun()

    def setup(self, examples: Sequence[Example]) -> "Trainer":
        import torch

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.steps = cfg.total_steps(len(examples))
        self.batch_size, self.warmup = min(cfg.batch_size, len(examples)), min(cfg.warmup_steps, self.steps)
        self.rank, self.world = _distributed()
        self.sharded = self.world > 1 and cfg.strategy == "fsdp"
        self.forward = self._parallel()
        self.named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([p for _, p in self.named], lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.batches = _batches(examples, self.batch_size, random.Random(cfg.seed))
        self.start = self._resume()
        self.run.learning_rates = [cfg.learning_rate * self._lr_factor(s) for s in range(self.start)]
        self.device = next(self.model.parameters()).device
        cuda = self.device.type == "cuda"
        self.precision = cfg.resolved_precision(cuda, cuda and torch.cuda.is_bf16_supported())
        self.best: tuple[float, dict] | None = None
        return self

    def train(self) -> TrainingRun:
        self.model.train()
        with self._speedups() as per_document:
            for step in range(self.start, self.steps):
                self.run.losses.append(self._step(per_document))
                if self.on_step is not None:
                    self.on_step(self.run)
                done = step + 1
                if self.cfg.checkpoint_dir and self.cfg.checkpoint_every and self.rank == 0 and (
                        done % self.cfg.checkpoint_every == 0 or done == self.steps):
                    self.save_checkpoint(done)
                if self.validate is not None and self.cfg.eval_every and (
                        done % self.cfg.eval_every == 0 or done == self.steps) and self._evaluate(done):
                    break
        self._restore_best()
        self.model.eval()
        return self.run

    def save_checkpoint(self, step: int) -> None:
        import torch

        from kfp_llmops import checkpoints

        checkpoints.save(self.cfg.checkpoint_dir, checkpoints.TrainingState(
            step=step, losses=self.run.losses, trainable={n: p.detach().clone() for n, p in self.named},
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), torch_rng=torch.get_rng_state()))

    def _lr_factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def _parallel(self):
        """The module each step calls: the model, DistributedDataParallel around it, or the model sharded (FSDP2)."""
        import torch

        share = f"rank {self.rank} of {self.world}, {self.batch_size // self.world or 1} of each {self.batch_size}-example batch"
        if self.sharded:
            if self.cfg.checkpoint_dir:
                raise ConfigError("checkpoint_dir with strategy fsdp is not supported yet (sharded optimizer state); "
                                  "use strategy ddp to checkpoint and resume")
            shard(self.model)
            self.log(f"fully sharded data parallel (FSDP2): {share}")
        elif self.world > 1:
            self.log(f"data parallel: {share}")
            return torch.nn.parallel.DistributedDataParallel(self.model)
        return self.model

    def _resume(self) -> int:
        """The step the latest complete checkpoint reached (its weights, optimizer, schedule, RNG and data position
        restored), or 0."""
        import torch

        from kfp_llmops import checkpoints

        resumed = checkpoints.load_latest(self.cfg.checkpoint_dir) if self.cfg.checkpoint_dir else None
        if resumed is None:
            return 0
        with torch.no_grad():
            for name, p in self.named:
                p.copy_(resumed.trainable[name])
        self.optimizer.load_state_dict(resumed.optimizer)
        self.scheduler.load_state_dict(resumed.scheduler)
        torch.set_rng_state(resumed.torch_rng)
        self.run.losses = list(resumed.losses)
        for _ in range(resumed.step * self.cfg.gradient_accumulation):  # the same shuffle, the batches seen skipped
            next(self.batches)
        self.log(f"resumed from the checkpoint at step {resumed.step} in {self.cfg.checkpoint_dir}")
        return resumed.step

    @contextlib.contextmanager
    def _speedups(self):
        """Fused LoRA forward, attention per packed document (measured to pay on CPU; on CUDA the masked SDPA kernel
        stays) and compiled decoder layers, each where it applies; yields whether attention is per document."""
        from kfp_llmops.lora_forward import fused_lora
        from kfp_llmops.packed_attention import packed_attention

        cpu, packing, compile_ = self.device.type == "cpu", self.cfg.pack_length, self.cfg.torch_compile
        with (fused_lora(self.model, enabled=not self.sharded) as fused,
              packed_attention(self.model, enabled=bool(packing) and cpu) as per_document,
              compiled_layers(self.model, enabled=compile_ and not self.sharded) as compiled):
            if fused:
                self.log(f"fused LoRA forward on {fused} layers")
            if compiled:
                self.log(f"torch.compile on {compiled} decoder layers (dynamic shapes; the first step compiles)")
            elif compile_:
                self.log("torch.compile left out: " + ("not with strategy fsdp" if self.sharded else "no decoder layers found"))
            if packing and self.attention_width is None:  # per document, the fewest slots are cheapest
                self.attention_width = 0.0 if per_document else attention_width(self.model)
            if per_document:
                self.log(f"packing rows of at most {packing} tokens in the fewest slots, attention per document "
                         "(causal SDPA on each document's span)")
            elif packing:
                self.log(f"packing rows of at most {packing} tokens by estimated cost "
                         f"(attention width {self.attention_width:.0f})")
            yield per_document

    def _batch(self, per_document: bool) -> dict:
        examples = next(self.batches)
        examples = examples[self.rank::self.world] if self.world > 1 else examples
        if self.cfg.pack_length:
            width = self.cfg.pack_length if self.cfg.pack_length > 0 else max(len(e.input_ids) for e in examples)
            batch = collate_packed(pack(examples, width, self.attention_width), self.pad_id, spans=per_document)
        else:
            batch = collate(examples, self.pad_id)
        self.run.real_tokens += sum(len(e.input_ids) for e in examples)
        self.run.token_slots += batch["input_ids"].numel()
        return {k: v.to(self.device) for k, v in batch.items()}

    def _step(self, per_document: bool) -> float:
        """One optimizer step over ``gradient_accumulation`` micro-batches; the loss, averaged over the ranks."""
        import torch

        accumulation, step_loss = self.cfg.gradient_accumulation, 0.0
        for _ in range(accumulation):
            batch = self._batch(per_document)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                loss = self.forward(**batch, use_cache=False).loss / accumulation  # a cache would hide the packing
            loss.backward()
            step_loss = step_loss + loss.detach()
        torch.nn.utils.clip_grad_norm_([p for _, p in self.named], self.cfg.max_grad_norm)
        self.run.learning_rates.append(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return _mean_over_ranks(step_loss, self.world)

    def _evaluate(self, done: int) -> bool:
        """Validates, keeps the best weights; True when ``early_stopping_patience`` evaluations brought nothing better."""
        value = self.validate()
        evals = self.run.evaluations
        evals.append((done, value))
        self.log(f"step {done}: validation loss {value:.4f}")
        if self.best is None or value < self.best[0]:
            self.best = (value, {n: p.detach().clone() for n, p in self.named})
            return False
        patience = self.cfg.early_stopping_patience
        if patience and len(evals) - 1 - min(range(len(evals)), key=lambda i: evals[i][1]) >= patience:
            self.log(f"early stopping at step {done}: no improvement in {patience} evaluations "
                     f"(best {self.best[0]:.4f} at step {min(evals, key=lambda e: e[1])[0]})")
            return True
        return False

    def _restore_best(self) -> None:
        import torch

        if self.best is not None and self.run.evaluations and self.best[0] < self.run.evaluations[-1][1]:
            with torch.no_grad():
                for name, p in self.named:
                    p.copy_(self.best[1][name])
            self.log(f"restored the best evaluated weights (validation loss {self.best[0]:.4f})")


def _distributed() -> tuple[int, int]:
    """(rank, world size) when torch.distributed is initialized (e.g. under torchrun), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_over_ranks(loss, world: int) -> float:
    if world > 1:
        import torch.distributed as dist

        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= world
    return float(loss)


def _batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> Iterable[list[Example]]:
    order = list(range(len(examples)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield [examples[i] for i in order[start : start + batch_size]]
