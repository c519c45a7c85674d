"""lm-evaluation-harness as an evaluation backend (``eval_config.harness``): the standard tasks' own YAML format
(kubeflow/pipelines-components' LLM evaluator and TrustyAI's LMEvalJob run the same harness), read from a local task
folder, against the candidate and every baseline, with the models the rest of the evaluation loaded. Its scores join
ours with their standard errors as the interval. Never imports kfp."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from kfp_llmops.configs import HarnessConfig
from kfp_llmops.errors import UserInputError

Z95 = 1.959964


def task_manager(cfg: HarnessConfig):
    """lm-eval's task index over ``cfg.task_dir`` alone (its built-in tasks, which fetch from a hub, left out); the
    tasks asked for and not found there are named."""
    from lm_eval.tasks import TaskManager

    folder = Path(cfg.task_dir)
    if not folder.is_dir():
        raise UserInputError(f"HarnessConfig.task_dir {folder}: no such folder of lm-eval task YAML files")
    manager = TaskManager(include_path=str(folder.resolve()), include_defaults=False, verbosity="ERROR")
    unknown = sorted(set(cfg.tasks) - set(manager.all_tasks))
    if unknown:
        raise UserInputError(f"HarnessConfig.tasks {unknown}: not in {folder} (it has {sorted(manager.all_tasks)})")
    return manager


def run_tasks(model, tokenizer, cfg: HarnessConfig, manager=None) -> dict[str, dict]:
    """``{task: {metric: value, metric_stderr: value or None, "samples": n}}`` for one loaded model (``metric`` is
    lm-eval's, with ``/filter`` added where the filter is not ``none``). Data files resolve against the task folder."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    manager = manager or task_manager(cfg)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.batch_size,
              device=str(next(model.parameters()).device))
    with contextlib.chdir(cfg.task_dir):
        out = simple_evaluate(model=lm, tasks=list(cfg.tasks), num_fewshot=cfg.num_fewshot, limit=cfg.limit,
                              task_manager=manager, log_samples=False, apply_chat_template=cfg.apply_chat_template,
                              verbosity="ERROR")
    return {task: _scores(values, out.get("n-samples", {}).get(task, {})) for task, values in out["results"].items()}


def _scores(values: dict, samples: dict) -> dict:
    scores: dict = {"samples": samples.get("effective", samples.get("original"))}
    for key, value in values.items():
        name, comma, flt = key.partition(",")  # lm-eval names a score "metric,filter"; other entries are not scores
        if not comma or name.endswith("_stderr") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metric = name if flt == "none" else f"{name}/{flt}"
        stderr = values.get(f"{name}_stderr,{flt}")
        scores[metric] = float(value)
        scores[f"{metric}_stderr"] = float(stderr) if isinstance(stderr, (int, float)) else None
    return scores


def compare_tasks(candidate: dict, baseline: dict) -> dict:
    """``{"task/metric": {candidate, baseline, delta, ci_low, ci_high}}``: the interval from the two standard errors
    (delta ± 1.96 √(se_c² + se_b²)), or the delta alone where lm-eval gave none."""
    out = {}
    for task, scores in candidate.items():
        for metric, value in scores.items():
            if metric == "samples" or metric.endswith("_stderr") or metric not in baseline.get(task, {}):
                continue
            other, delta = baseline[task][metric], value - baseline[task][metric]
            se = [scores.get(f"{metric}_stderr"), baseline[task].get(f"{metric}_stderr")]
            half = Z95 * math.sqrt(sum(s * s for s in se)) if all(s is not None for s in se) else 0.0
            out[f"{task}/{metric}"] = {"candidate": value, "baseline": other, "delta": delta,
                                       "ci_low": delta - half, "ci_high": delta + half}
    return out
