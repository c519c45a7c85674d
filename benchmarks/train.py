"""Benchmark: real (non-pad) training tokens per second of our trainer (packing, per-document isolation) against the
Hugging Face ``Trainer`` + PEFT with dynamic padding, same ~10M-parameter Llama, same LoRA config, same global batch,
same data (log-normal lengths, median about 80 tokens, max 256), side by side in one run. Also: eval loss of both,
padding efficiency, and MFU (:func:`common.lora_training_flops`: 4 FLOPs per frozen weight, 6 per adapter weight and
causal attention per document, per token, against this machine's measured fp32 GEMM throughput)."""

from __future__ import annotations

import argparse
import math
import random
import sys
import time

from common import lora_training_flops, table, write_result


def make_examples(n: int, vocab: int, seed: int):
    from kfp_llmops.examples import Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        half = min(127, max(2, int(rng.lognormvariate(math.log(40), 0.5))))
        prompt = [rng.randrange(4, vocab) for _ in range(half)]
        response = prompt[::-1] + [2]
        out.append(Example(prompt + response, [-100] * half + response))
    return out


def model_10m(vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=320, intermediate_size=864, num_hidden_layers=8,
                                        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                                        pad_token_id=0, eos_token_id=2))


def gemm_flops(repeats: int = 5) -> float:
    """This machine's fp32 GEMM throughput: the best of ``repeats`` timings of 20 products of 1024 x 1024 matrices (on
    these CPUs 512 to 2048 reach the same within 3 %)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start, runs = time.perf_counter(), 20
        for _ in range(runs):
            a @ b
        best = max(best, 2 * 1024**3 * runs / (time.perf_counter() - start))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--skip-compiled", action="store_true", help="leave out the torch_compile run (train-compiled)")
    args = parser.parse_args(argv)

    import torch
    from transformers import Trainer, TrainingArguments

    from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
    from kfp_llmops.modeling import response_nll

    vocab = 320
    train = make_examples(args.steps * args.batch, vocab, seed=1)
    held_out = make_examples(64, vocab, seed=2)
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch, warmup_steps=2, learning_rate=2e-3)
    n_params = sum(p.numel() for p in model_10m(vocab).parameters())
    lengths = [len(e.input_ids) for e in train]
    peak_before = gemm_flops()  # measured before and after the runs: MFU is against the higher

    torch.manual_seed(0)
    ours_model = attach_lora(model_10m(vocab), cfg)
    ours = timed_train(ours_model, train, args, cfg)
    stats, ours_tps = ours["stats"], ours["tokens_per_s"]

    torch.manual_seed(0)
    hf_model = attach_lora(model_10m(vocab), cfg)

    def collate(features):
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.zeros(len(features), width, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros(len(features), width, dtype=torch.long)
        for r, f in enumerate(features):
            n = len(f["input_ids"])
            ids[r, :n], labels[r, :n], mask[r, :n] = torch.tensor(f["input_ids"]), torch.tensor(f["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in train]
    targs = TrainingArguments(output_dir="build/bench/hf-trainer", per_device_train_batch_size=args.batch,
                              max_steps=args.steps, learning_rate=cfg.learning_rate, lr_scheduler_type="cosine",
                              warmup_steps=cfg.warmup_steps, weight_decay=0.0, max_grad_norm=1.0, logging_steps=10**6,
                              report_to=[], save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
                              remove_unused_columns=False, dataloader_num_workers=0)
    trainer = Trainer(model=hf_model, args=targs, train_dataset=rows, data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    hf_s = time.perf_counter() - start
    hf_real = sum(len(e.input_ids) for e in train[: args.steps * args.batch])
    hf_tps = hf_real / hf_s
    hf_slots = 0
    order = list(range(len(rows)))
    for k in range(0, len(order), args.batch):
        hf_slots += args.batch * max(len(rows[i]["input_ids"]) for i in order[k : k + args.batch])

    trl_model, trl_s, trl_real, trl_rows = train_trl(train, vocab, args, cfg)
    trl_tps = trl_real / trl_s

    ours_loss = response_nll(ours_model, held_out, pad_id=0)
    hf_loss = response_nll(hf_model, held_out, pad_id=0)
    trl_loss = response_nll(trl_model, held_out, pad_id=0)
    peak = max(peak_before, gemm_flops())
    flops_per_token = lora_training_flops(ours_model, lengths) / sum(lengths)  # the same model FLOPs for all three
    write_result(
        "train", metric="real tokens/s, LoRA r16 all-linear", unit="tokens/s", ours=ours_tps, baseline=hf_tps,
        baseline_name="transformers Trainer + PEFT, dynamic padding", higher_is_better=True,
        goal="ratio >= 1.6, eval loss within 1 %, padding efficiency >= 0.95",
        details={"parameters": n_params, "steps": args.steps, "global_batch": args.batch,
                 "eval_loss_ours": ours_loss[0] / ours_loss[1], "eval_loss_baseline": hf_loss[0] / hf_loss[1],
                 "padding_efficiency_ours": stats["real_tokens"] / stats["token_slots"],
                 "padding_efficiency_baseline": hf_real / hf_slots,
                 "mfu_ours": ours_tps * flops_per_token / peak, "mfu_baseline": hf_tps * flops_per_token / peak,
                 "gemm_fp32_gflops": peak / 1e9, "flops_per_token": flops_per_token, "threads": torch.get_num_threads()},
    )
    write_result(
        "train-vs-trl", metric="real tokens/s, LoRA r16 all-linear", unit="tokens/s", ours=ours_tps, baseline=trl_tps,
        baseline_name="TRL SFTTrainer + PEFT, packing bfd (padding-free), loss on the completion only",
        higher_is_better=True, goal="ratio >= 1.3, eval loss within 1 %, MFU >= 0.5 of the fp32 GEMM peak",
        details={"parameters": n_params, "steps": args.steps, "examples": len(train), "trl_packed_rows": trl_rows,
                 "trl_batch_rows": math.ceil(trl_rows / args.steps),
                 "eval_loss_ours": ours_loss[0] / ours_loss[1], "eval_loss_baseline": trl_loss[0] / trl_loss[1],
                 "eval_loss_ratio": (ours_loss[0] / ours_loss[1]) / (trl_loss[0] / trl_loss[1]),
                 "mfu_ours": ours_tps * flops_per_token / peak, "mfu_baseline": trl_tps * flops_per_token / peak,
                 "mfu_hf_trainer": hf_tps * flops_per_token / peak, "gemm_fp32_gflops": peak / 1e9,
                 "flops_per_token": flops_per_token,
                 "trl": _version("trl"), "threads": torch.get_num_threads()},
    )
    if not args.skip_compiled:
        compiled_row(args, train, cfg, vocab, ours, peak, flops_per_token)
    print(table())
    return 0


def compiled_row(args, train, cfg, vocab, eager: dict, peak: float, flops_per_token: float) -> dict:
    """``train-compiled``: the same run of our trainer with ``torch_compile``, after its first steps against ours
    without it, and the first step's extra seconds as the steps that pay them back."""
    import torch

    from kfp_llmops.components.training.train_lora.core import attach_lora

    torch.manual_seed(0)
    compiled = timed_train(attach_lora(model_10m(vocab), cfg), train, args, cfg, torch_compile=True)
    step_tokens = eager["stats"]["real_tokens"] / args.steps
    saved_per_step = step_tokens / eager["steady"] - step_tokens / compiled["steady"]
    extra_s = compiled["first_step_s"] - eager["first_step_s"]
    return write_result(
        "train-compiled", metric="real tokens/s after the first 2 steps", unit="tokens/s", ours=compiled["steady"],
        baseline=eager["steady"], baseline_name="our trainer without torch_compile (the train row), same steps",
        higher_is_better=True, goal="informative: torch_compile pays back its first step on long runs",
        details={"first_step_s": compiled["first_step_s"], "first_step_s_eager": eager["first_step_s"],
                 "whole_run_tokens_per_s": compiled["tokens_per_s"], "whole_run_tokens_per_s_eager": eager["tokens_per_s"],
                 "max_loss_difference": max(abs(a - b) for a, b in zip(compiled["losses"], eager["losses"])),
                 "mfu_ours": compiled["steady"] * flops_per_token / peak,
                 "mfu_baseline": eager["steady"] * flops_per_token / peak, "gemm_fp32_gflops": peak / 1e9,
                 "flops_per_token": flops_per_token,
                 "break_even_steps": extra_s / saved_per_step if saved_per_step > 0 else None},
    )


def timed_train(model, train, args, cfg, torch_compile: bool = False):
    """Our trainer on the benchmark's examples: its stats, losses, tokens/s over the run and after the first 2 steps
    (``steady``), and the first step's seconds."""
    import dataclasses

    from kfp_llmops.training import Trainer

    marks = []
    cfg = dataclasses.replace(cfg, max_steps=args.steps, batch_size=args.batch, seed=0, torch_compile=torch_compile)
    start = time.perf_counter()
    trainer = Trainer(model, cfg, pad_id=0, on_step=lambda run: marks.append((time.perf_counter(), run.real_tokens)))
    run = trainer.setup(train).train()
    stats, losses = {"real_tokens": run.real_tokens, "token_slots": run.token_slots}, run.losses
    seconds = time.perf_counter() - start
    (t0, n0), (t1, n1) = marks[1] if len(marks) > 2 else (start, 0), marks[-1]  # a run of 2 steps: all of it
    return {"stats": stats, "losses": losses, "tokens_per_s": stats["real_tokens"] / seconds,
            "steady": (n1 - n0) / (t1 - t0), "first_step_s": marks[0][0] - start}


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def train_trl(train, vocab: int, args, cfg):
    """TRL's SFTTrainer on the same examples, LoRA config, learning rate schedule, optimizer steps and one pass over
    the data (:mod:`trl_baseline`)."""
    import torch

    from kfp_llmops.components.training.train_lora.core import attach_lora
    from trl_baseline import sft_trainer

    torch.manual_seed(0)
    model = attach_lora(model_10m(vocab), cfg)
    trainer, rows = sft_trainer(train, model, attach_lora(model_10m(vocab), cfg), steps=args.steps,
                                learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps,
                                max_length=cfg.pack_length, output_dir="build/bench/trl")
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return model, seconds, sum(len(e.input_ids) for e in train), rows


if __name__ == "__main__":
    sys.exit(main())
