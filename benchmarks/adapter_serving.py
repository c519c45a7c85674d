"""Serving fine-tunes as the deltas they are (``make bench-adapters``; ``build/bench/adapter-*.json`` in the shared result format): bytes
uploaded and stored per version, and serving memory for N versions, adapter against merged.

On the scale ladder's 478.9M-parameter Llama (``benchmarks/scale.py``'s ``model`` stage): N LoRA adapters of the
pipeline's default shape (TrainConfig: r 16, alpha 32, all linear layers; random B so that each answers differently)
saved as peft safetensors and packaged as ``package_adapter`` writes the version ``serving_format: adapter`` registers,
and each merged as ``merge_adapter`` writes it (bf16 safetensors with the tokenizer).
Serving: one ``hf_server`` holding the base once with the N adapters, against N ``hf_server`` processes each holding
one merged model (the way every merged version is served today), all on CPU (fp32 weights there); memory is each
process's resident set after it answered one request per version.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "copy: sun moon"}]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rss_mb(pid: int) -> float:
    """Resident set of a process and its children (the server is one process)."""
    import psutil

    proc = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)


def make_adapters(base: Path, work: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from kfp_llmops.modeling import load_causal_lm, load_tokenizer
    from kfp_llmops.prompts import PromptFormat

    tokenizer = load_tokenizer(str(base))
    fmt = PromptFormat.served(str(base), tokenizer)
    out = []
    for i in range(n):
        folder = work / f"adapter-v{i + 1}"
        if not (folder / "adapter_model.safetensors").exists():
            torch.manual_seed(i)
            model = get_peft_model(load_causal_lm(str(base)), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                                         task_type="CAUSAL_LM"))
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if "lora_B" in name:
                        param.normal_(0, 0.02)
            model.save_pretrained(folder, safe_serialization=True)
            fmt.save(folder)
        out.append(folder)
    return out


def packaged_folders(base: Path, adapters: list[Path], work: Path) -> list[Path]:
    """What ``serving_format: adapter`` registers and serves for each version (package_adapter's folder)."""
    from kfp_llmops.components.compilation.package_adapter.core import package

    out = []
    for adapter in adapters:
        folder = work / f"packaged-{adapter.name}"
        if not (folder / "adapter_config.json").exists():
            package(adapter, folder, base_model=str(base), base_model_revision="")
        out.append(folder)
    return out


def merged_folders(base: Path, adapters: list[Path], work: Path) -> list[Path]:
    from kfp_llmops.components.compilation.merge_adapter.core import merge_to_folder

    out = []
    for adapter in adapters:
        folder = work / f"merged-{adapter.name}"
        if not (folder / "config.json").exists():
            merge_to_folder(str(base), str(adapter), folder, "bf16")
        out.append(folder)
    return out


def serve_and_measure(servers: list[tuple[str, Path, list[str]]], names: list[str]) -> dict:
    """Starts each (format, model, extra args) server, asks each name once, and sums the servers' resident sets."""
    import contextlib

    import psutil

    from kfp_llmops.serving.local import chat_completion, local_server

    with contextlib.ExitStack() as stack:
        urls = []
        start = time.perf_counter()
        for fmt, model, extra in servers:
            name = "base" if fmt == "adapter" else model.name
            urls.append((stack.enter_context(local_server(name, model, serving_format=fmt, extra_args=extra,
                                                          timeout_s=600)), name))
        ready_s = time.perf_counter() - start
        for name in names:
            url = urls[0][0] if len(urls) == 1 else next(u for u, n in urls if n == name)
            answer = chat_completion(url, name, MESSAGES, max_tokens=4)
            assert answer["model"] == name
        pids = [p.pid for p in psutil.Process().children() if "kfp_llmops.serving.hf_server" in " ".join(p.cmdline())]
        return {"processes": len(pids), "rss_mb": round(sum(rss_mb(pid) for pid in pids), 1), "ready_s": round(ready_s, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--assets", type=Path, default=ROOT / "build" / "demo-assets")
    parser.add_argument("--base", type=Path, help="a base model folder (default: the scale ladder's, built if missing)")
    args = parser.parse_args(argv)
    from scale import WORK, ensure_model

    base = args.base or ensure_model(args.assets)
    work = WORK / "adapter-serving"
    work.mkdir(parents=True, exist_ok=True)
    trained = make_adapters(base, work, args.versions)
    merged = merged_folders(base, trained, work)
    adapters = packaged_folders(base, trained, work)
    names = [a.name for a in adapters]
    per_version = {"adapter_bytes": folder_bytes(adapters[0]), "merged_bytes": folder_bytes(merged[0])}
    per_version["ratio"] = round(per_version["adapter_bytes"] / per_version["merged_bytes"], 5)
    one_base = serve_and_measure([("adapter", base, [x for a in adapters for x in ("--adapter", a.name, str(a))])], names)
    n_merged = serve_and_measure([("hf", m, []) for m in merged], [m.name for m in merged])
    from common import table, write_result

    details = {"model": str(base), "versions": args.versions, "per_version": per_version,
               "adapters_on_one_base": one_base, "merged_models": n_merged, "when": time.strftime("%Y-%m-%d"),
               "cpus": os.cpu_count()}
    write_result("adapter-bytes-per-version", metric="bytes uploaded and stored per version", unit="bytes",
                 ours=per_version["adapter_bytes"], baseline=per_version["merged_bytes"], baseline_name="merged model (bf16)",
                 higher_is_better=False, goal=">= 10 (a delta, not a copy of the base)", details=details)
    write_result("adapter-serving-memory", metric=f"serving RSS, {args.versions} versions", unit="MB",
                 ours=one_base["rss_mb"], baseline=n_merged["rss_mb"], baseline_name="one merged model per process",
                 higher_is_better=False, goal="> 1", details=details)
    print(f"per version: adapter {per_version['adapter_bytes'] / 1e6:.1f} MB, merged {per_version['merged_bytes'] / 1e6:.1f} MB")
    print(f"{args.versions} versions served: one base with adapters {one_base['rss_mb']:.0f} MB in {one_base['processes']} "
          f"process, merged {n_merged['rss_mb']:.0f} MB in {n_merged['processes']}")
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
