"""Scale ladder (``make scale``): the product at the sizes users bring, on this machine, with figures per stage.

1. ``data``: a generated chat dataset of ``--rows`` conversations (default 1,000,000; two exchanges each, every other
   one with a system turn), JSONL.
2. ``validate``: ``kfp-llmops validate`` on it (the default suite, screening included).
3. ``prepare``: tokenized with the demo tokenizer's chat template, labels on every assistant turn, split.
4. ``model``: a ~0.5B-parameter Llama-shaped random model (24 layers, hidden 1024, MLP 5632, GQA 16/4 heads) saved as
   fp32 safetensors (1.9 GB: its ONNX export needs external data).
5. ``pipeline``: the whole ``finetune-and-rollout`` on kfp.local with that model, on the first ``--train-rows`` and
   ``--eval-rows`` conversations, with small step counts (a random model: the figures measure the machinery).

Each stage runs in its own process; ``build/bench/scale.json`` gets per stage the wall seconds and the peak RSS (the
stage's process and its children: for the pipeline, the largest step), rows/s for validate and prepare, and the
pipeline's per-step seconds. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("KFP_LLMOPS_SCALE_WORK") or ROOT / "build" / "scale")
OUT = Path(os.environ.get("KFP_LLMOPS_BENCH_OUT") or ROOT / "build" / "bench")
MODEL = dict(hidden_size=1024, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
             num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False)


def stage_data(args) -> dict:
    import random

    from kfp_llmops.demo.assets import SYSTEM_PROMPT, TASKS, WORDS

    rng = random.Random(0)
    path = WORK / "chat.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(args.rows):
            messages = [{"role": "system", "content": SYSTEM_PROMPT}] if i % 2 == 0 else []
            for _ in range(2):
                task, words = rng.choice(list(TASKS)), rng.sample(WORDS, rng.randint(3, 8))
                messages += [{"role": "user", "content": f"{task}: {' '.join(words)} (#{i})"},
                             {"role": "assistant", "content": " ".join(TASKS[task](words))}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return {"rows": args.rows, "bytes": path.stat().st_size}


def stage_validate(args) -> dict:
    out = WORK / "validate"
    cli = Path(sys.executable).parent / "kfp-llmops"
    done = subprocess.run([str(cli), "validate", str(WORK / "chat.jsonl"), "--out", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"validate failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads((out / "metrics.json").read_text())


def stage_prepare(args) -> dict:
    from kfp_llmops.components.data.prepare_dataset import core
    from kfp_llmops.modeling import load_tokenizer

    # what the prepare_dataset component runs: streamed over the file, a chunk of rows in memory at a time
    return core.prepare_file(WORK / "chat.jsonl", load_tokenizer(str(args.assets / "base-model")), WORK / "prepared")


def stage_model(args) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from kfp_llmops.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(args.assets / "base-model"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **MODEL)
    model = LlamaForCausalLM(config)
    out = WORK / "model-0.5b"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "bytes": sum(f.stat().st_size for f in out.glob("*.safetensors"))}


def ensure_model(assets: Path) -> Path:
    """The ladder's 0.5B model (and a small generated chat set beside it), built by this script's own stages when
    missing: for the benchmarks that run on it."""
    model = WORK / "model-0.5b"
    if not list(model.glob("*.safetensors")) or not (WORK / "chat.jsonl").exists():
        subprocess.run([sys.executable, __file__, "--rows", "2000", "--stages", "data,model", "--assets", str(assets)],
                       check=True)
    return model


def pipeline_arguments(work: Path, train_rows: int = 256, eval_rows: int = 16) -> dict:
    """The scale run's arguments: the first ``train_rows`` and last ``eval_rows`` generated conversations, the 0.5B
    model, small step counts, and a gate that lets a random model through (it cannot improve on itself)."""
    lines = (work / "chat.jsonl").read_text(encoding="utf-8").splitlines()
    train, evals = work / "train-small.jsonl", work / "eval-small.jsonl"
    train.write_text("\n".join(lines[:train_rows]) + "\n", encoding="utf-8")
    evals.write_text("\n".join(lines[-eval_rows:]) + "\n", encoding="utf-8")
    return {
        "base_model": str(work / "model-0.5b"), "train_data": str(train), "eval_data": str(evals),
        "registry_uri": f"sqlite:///{work / 'registry.db'}", "model_name": "scale",
        "train_config": {"max_steps": 2, "batch_size": 4, "warmup_steps": 1, "r": 8, "alpha": 16},
        "eval_config": {"max_new_tokens": 4, "batch_size": 8, "latency_requests": 2, "latency_tokens": 4,
                        "throughput_batch": 2, "golden_prompts": 4, "bootstrap_resamples": 50, "safety": False},
        "gate_config": {"improve_over": [], "max_primary_drop": 1.0, "max_perplexity_increase": 10.0,
                        "max_p95_latency_increase": 10.0},
        "rollout_config": {"schedule": [100], "requests_per_step": 8, "analysis": {"min_requests": 4}},
    }


def stage_pipeline(args) -> dict:
    from kfp_llmops.local_run import run_local
    from kfp_llmops.pipelines.registry import build

    arguments = pipeline_arguments(WORK, args.train_rows, args.eval_rows)
    summary = run_local(build("finetune-and-rollout", "vertex"), arguments, WORK / "runs")
    steps = {s.name: round(s.seconds, 1) for s in summary.steps if not s.name.startswith("importer")}
    if not summary.succeeded:
        raise SystemExit(summary.text())
    export = summary.artifacts("export-onnx", "onnx_model")[0]["metadata"]
    return {"steps_seconds": steps, "succeeded": summary.succeeded,
            "export": {k: export.get(k) for k in ("external_data", "size_bytes", "max_abs_logit_diff", "variant",
                                                  "greedy_identical", "greedy_prompts")}}


STAGES = {"data": stage_data, "validate": stage_validate, "prepare": stage_prepare, "model": stage_model,
          "pipeline": stage_pipeline}


def run_stage(name: str, argv: list[str]) -> dict:
    """The stage in a process of its own: its wall seconds and peak RSS (with its children) are its alone."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--stage", name, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=256)
    parser.add_argument("--eval-rows", type=int, default=16)
    parser.add_argument("--assets", type=Path, default=ROOT / "build" / "demo-assets")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.stage:  # inside a stage's own process
        out = STAGES[args.stage](args)
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({**out, "peak_rss_mb": round(max(self_rss, children) / 1024)}))
        return 0
    passthrough = ["--rows", str(args.rows), "--train-rows", str(args.train_rows), "--eval-rows", str(args.eval_rows),
                   "--assets", str(args.assets)]
    results = {}
    for name in args.stages.split(","):
        results[name] = run_stage(name, passthrough)
        if name in ("validate", "prepare"):
            results[name]["rows_per_s"] = round(args.rows / results[name]["wall_s"])
        print(f"{name:<10} {results[name]['wall_s']:>8.1f} s  peak RSS {results[name]['peak_rss_mb']:>6} MB  "
              + json.dumps({k: v for k, v in results[name].items() if k not in ("wall_s", "peak_rss_mb")})[:300], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    previous = OUT / "scale.json"  # a run of some stages keeps the others' figures from the last run
    stages = {**(json.loads(previous.read_text())["stages"] if previous.is_file() and args.stages != ",".join(STAGES) else {}),
              **results}
    report = {"rows": args.rows, "model": MODEL, "stages": stages, "total_s": round(sum(r["wall_s"] for r in stages.values()), 1),
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d")}
    (OUT / "scale.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"total {report['total_s']} s; {OUT / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
