"""Every pipeline of the project, by name: what ``compile.py`` compiles and ``kfp-llmops run`` runs."""

from __future__ import annotations

import importlib

PIPELINES = {
    "finetune-and-rollout": "kfp_llmops.pipelines.finetune_and_rollout.pipeline",
    "eval-only": "kfp_llmops.pipelines.eval_only.pipeline",
    "lora-sweep": "kfp_llmops.pipelines.lora_sweep.pipeline",
    "monitor": "kfp_llmops.pipelines.monitor.pipeline",
}


def build(name: str, target: str):
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r}; known: {sorted(PIPELINES)}")
    return importlib.import_module(PIPELINES[name]).build(target)
