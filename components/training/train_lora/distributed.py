"""Data-parallel LoRA training inside one task: ``torchrun --nproc_per_node N -m
kfp_llmops.components.training.train_lora.distributed --prepared DIR --base-model M --config JSON --out DIR``.

Every rank draws the same seeded global batch and trains on its slice of it; gradients are averaged by
``DistributedDataParallel`` (``strategy: ddp``) or reduce-scattered by FSDP2 over sharded parameters
(``strategy: fsdp``), on gloo (CPU) or NCCL (GPUs); rank 0 writes the checkpoints, the adapter and ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.distributed as dist

    from kfp_llmops.tokenized import read_prepared
    from kfp_llmops.components.training.train_lora import core
    from kfp_llmops.errors import UserInputError
    from kfp_llmops.modeling import load_tokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--config", default="{}")
    parser.add_argument("--out", required=True)
    parser.add_argument("--tracking", default="{}", help="JSON: uri and model_name of the MLflow store (rank 0 logs)")
    args = parser.parse_args(argv)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        cfg = core.TrainConfig.from_dict(json.loads(args.config))
        data = read_prepared(args.prepared)
        tokenizer = load_tokenizer(args.base_model)
        tracking = json.loads(args.tracking)
        with core.tracked(tracking.get("uri", "") if rank == 0 else "", tracking.get("model_name", ""), cfg,
                          base_model=args.base_model) as tracker:
            result = core.train(args.base_model, data.train, data.validation, cfg, pad_id=tokenizer.pad_token_id,
                                log=print if rank == 0 else (lambda _: None), tracker=tracker)
        sharded = cfg.strategy == "fsdp" and dist.get_world_size() > 1
        state = core.adapter_state(result.model) if sharded else None  # gathered on every rank, saved by rank 0
        if rank == 0:
            core.save_adapter(result, cfg, args.out, state)
            summary = {**result.metrics(), "tracking_run_id": tracker.run_id, "world_size": dist.get_world_size(), "backend": backend, "strategy": cfg.strategy}
            Path(args.out, "result.json").write_text(json.dumps(summary), encoding="utf-8")
        dist.barrier()
    except UserInputError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def launch(prepared_dir: str, base_model: str, config: dict, out_dir: str, nproc_per_node: int,
           tracking: dict | None = None) -> dict:
    """Runs this module under ``torchrun --standalone`` with ``nproc_per_node`` processes; returns rank 0's metrics.
    ``tracking``: ``uri`` and ``model_name`` of an MLflow store for rank 0's step metrics."""
    import subprocess

    from kfp_llmops.errors import UserInputError

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
           "-m", "kfp_llmops.components.training.train_lora.distributed", "--prepared", str(prepared_dir),
           "--base-model", base_model, "--config", json.dumps(config), "--out", str(out_dir),
           "--tracking", json.dumps(tracking or {})]
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise UserInputError(f"data-parallel training with {nproc_per_node} processes failed (exit {done.returncode}); "
                             "see the log above")
    return json.loads(Path(out_dir, "result.json").read_text(encoding="utf-8"))
