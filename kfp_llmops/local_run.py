"""Runs a pipeline on kfp.local (SubprocessRunner without a venv per task, or DockerRunner in our image) and
summarizes what happened."""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")


@dataclass
class StepRecord:
    name: str
    started: float
    ended: float | None = None
    status: str = "RUNNING"

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started


class StepTimer(logging.Filter):
    """Collects each task's status and duration from kfp.local's log lines.

    A filter on the root logger, not a handler: kfp.local replaces the root logger's handlers while it runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps: dict[str, StepRecord] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        self._observe(record)
        return True

    def _observe(self, record: logging.LogRecord) -> None:
        msg = _ANSI.sub("", record.getMessage())
        if m := _START.search(msg):
            self.steps[m.group(1)] = StepRecord(m.group(1), time.monotonic())
        elif (m := _END.search(msg)) and m.group(1) in self.steps:
            step = self.steps[m.group(1)]
            step.ended, step.status = time.monotonic(), m.group(2)


@dataclass
class RunSummary:
    pipeline: str
    run_dir: Path | None
    succeeded: bool
    error: str | None
    steps: list[StepRecord]
    outputs: dict[str, dict]
    cost_config: dict | None = None

    def cost(self) -> dict:
        """The run's estimated cost: every step's seconds on the accelerator its artifacts recorded (CPU otherwise),
        priced with the run's ``cost_config``."""
        from kfp_llmops.cost import CPU, CostConfig, StepUsage, estimate

        usages = []
        for s in self.steps:
            if s.name.startswith("importer"):
                continue
            recorded = [a["metadata"] for value in self.task_output(s.name).get("artifacts", {}).values()
                        for a in value.get("artifacts", []) if a.get("metadata", {}).get("accelerator")]
            accelerator = recorded[0]["accelerator"] if recorded else CPU
            count = int(recorded[0].get("accelerator_count") or 1) if recorded else 1
            usages.append(StepUsage(s.name, s.seconds, accelerator, count))
        return estimate(usages, CostConfig.from_dict(self.cost_config or {}))

    def task_output(self, task: str) -> dict:
        return self.outputs.get(task, {})

    def artifacts(self, task: str, name: str) -> list[dict]:
        return self.task_output(task).get("artifacts", {}).get(name, {}).get("artifacts", [])

    def text(self) -> str:
        lines = [f"Pipeline {self.pipeline}: {'SUCCEEDED' if self.succeeded else 'FAILED'}", "", "Steps:"]
        for s in self.steps:
            lines.append(f"  {s.name:<28} {s.status:<8} {s.seconds:7.1f} s")
        total = sum(s.seconds for s in self.steps)
        lines.append(f"  {'total':<28} {'':<8} {total:7.1f} s")
        if self.steps:
            from kfp_llmops.cost import describe

            lines += ["", f"Estimated cost: {describe(self.cost())} (prices: cost_config)"]
        validation = self.artifacts("validate-dataset", "report")
        if validation:
            meta = validation[0]["metadata"]
            lines += ["", f"Data validation: {'PASSED' if meta.get('passed') else 'FAILED'} (report: {validation[0]['uri']})"]
            if not meta.get("passed"):
                lines += [f"  {line}" for line in meta.get("summary", "").splitlines()]
        evaluation = self.artifacts("evaluate-model", "metrics")
        if evaluation:
            m = evaluation[0]["metadata"]
            lines += ["", "Key metrics:"]
            baselines = sorted({k.split(".")[0] for k in m if k.endswith(".exact_match") and k.count(".") == 1} - {"candidate"})
            for key in ("exact_match", "rouge_l", "perplexity", "latency_p95_ms", "attack_success_rate"):
                if f"candidate.{key}" in m:
                    others = "  ".join(f"{b} {m[f'{b}.{key}']:.4f}" for b in baselines)
                    lines.append(f"  {key:<20} candidate {m[f'candidate.{key}']:.4f}  {others}")
        decision = self.artifacts("regression-gate", "decision")
        if decision:
            meta = decision[0]["metadata"]
            lines += ["", f"Gate: {'PROMOTE' if meta.get('passed') else 'BLOCKED'}"]
            lines += [f"  {r}" for r in meta.get("reasons", [])]
        registered = self.artifacts("register-model", "lineage")
        if registered:
            meta = registered[0]["metadata"]
            lines += ["", f"Registered: {meta.get('registered_model')} version {meta.get('version')} "
                          f"({'new' if meta.get('created') else 'existing'}) in {meta.get('registry_uri')}"]
        approval = self.artifacts("await-approval", "approval")
        if approval and approval[0]["metadata"].get("by") != "not required":
            meta = approval[0]["metadata"]
            lines += ["", f"Approval: {'APPROVED' if meta.get('approved') else 'REJECTED'} by {meta.get('by')}: "
                          f"{meta.get('reason')}"]
        rollout = self.artifacts("rollout-model", "report")
        if rollout:
            meta = rollout[0]["metadata"]
            stable = f"version {meta['stable_version']}" if meta.get("stable_version") else "none (first rollout)"
            lines += ["", f"Rollout ({meta.get('target')}): {meta.get('decision')} version {meta.get('version')}; "
                          f"stable was {stable}; report: {rollout[0]['uri']}"]
        monitored = self.artifacts("monitor-model", "report")
        if monitored:
            meta = monitored[0]["metadata"]
            lines += ["", f"Monitoring: {meta.get('model')} version {meta.get('version')}: {meta.get('summary')} "
                          f"(report: {monitored[0]['uri']})"]
            lines += [f"  action: {a}" for a in meta.get("actions", [])]
        if self.error:
            lines += ["", f"Error: {self.error}"]
        if self.run_dir:
            lines += ["", f"Outputs: {self.run_dir}"]
            for task in ("register-model", "export-onnx"):
                for name, value in self.task_output(task).get("artifacts", {}).items():
                    for art in value.get("artifacts", []):
                        lines.append(f"  {task}/{name}: {art['uri']}")
        return "\n".join(lines)


def run_local(pipeline_func, arguments: dict, pipeline_root: str | Path, *, enable_caching: bool = False,
              runner: str = "subprocess", container_policy=None) -> RunSummary:
    """Runs ``pipeline_func`` on kfp.local. ``runner``: ``subprocess`` (this Python, no venv per task) or ``docker``
    (every step in the runtime image, as on a cluster: see :mod:`kfp_llmops.container_run`)."""
    import contextlib

    from kfp import local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    ends: list = []
    patch = contextlib.nullcontext()
    if runner == "docker":
        from kfp_llmops import container_run
        from kfp_llmops.images import RUNTIME_IMAGE

        container_run.ensure_image(container_run.docker_client(), RUNTIME_IMAGE)
        arguments = container_run.absolute_paths(arguments)  # as the containers see them: mounted at the same place
        task_runner = container_run.docker_runner(arguments, root, container_policy)
        patch = container_run.containers_reported(ends)
    elif runner == "subprocess":
        task_runner = local.SubprocessRunner(use_venv=False)
    else:
        raise ValueError(f"runner must be subprocess or docker, got {runner!r}")
    local.init(runner=task_runner, pipeline_root=str(root), enable_caching=enable_caching)
    timer = StepTimer()
    logging.getLogger().addFilter(timer)
    error = None
    try:
        with warnings.catch_warnings(), patch:
            # kfp.local warns for every image whose name lacks "python"; ours is a Python image.
            warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
            pipeline_func(**arguments)
    except RuntimeError as exc:
        error = _ANSI.sub("", str(exc))
        reasons = [end.reason for end in ends if end.reason]
        if reasons:
            error += f" ({'; '.join(dict.fromkeys(reasons))})"
    finally:
        logging.getLogger().removeFilter(timer)
    new_dirs = sorted((p for p in set(root.iterdir()) - before if p.is_dir()), key=lambda p: p.stat().st_mtime)
    run_dir = new_dirs[-1] if new_dirs else None
    outputs = {}
    if run_dir:
        for f in run_dir.glob("*/executor_output.json"):
            outputs[f.parent.name] = json.loads(f.read_text())
    name = getattr(pipeline_func, "name", getattr(pipeline_func, "__name__", "pipeline"))
    return RunSummary(name, run_dir, error is None, error, list(timer.steps.values()), outputs,
                      cost_config=arguments.get("cost_config"))
