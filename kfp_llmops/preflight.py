"""Checks every config a pipeline run takes, before any work: in the CLI before submitting (any backend), and as the
first step of each pipeline (``check-configs``), so a run started from the Kubeflow UI or Vertex AI fails in seconds
with every mistake named, instead of after validation and preparation, or after retries of the training step.

Never imports kfp.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kfp_llmops.errors import ConfigError, UserInputError

# pipeline parameter -> (module, class): the typed config it is read into inside the steps
CONFIGS = {
    "train_config": ("kfp_llmops.configs", "TrainConfig"),
    "eval_config": ("kfp_llmops.configs", "EvalConfig"),
    "gate_config": ("kfp_llmops.configs", "GateConfig"),
    "rollout_config": ("kfp_llmops.deployment.config", "RolloutConfig"),
    "screening": ("kfp_llmops.configs", "ScreeningConfig"),
    "approval_config": ("kfp_llmops.configs", "ApprovalConfig"),
    "trainer_job": ("kfp_llmops.configs", "TrainerJobSpec"),
    "cost_config": ("kfp_llmops.cost", "CostConfig"),
    "staging_config": ("kfp_llmops.deployment.config", "StagingConfig"),
    "monitor_config": ("kfp_llmops.configs", "MonitorConfig"),
    "retrain_config": ("kfp_llmops.configs", "RetrainConfig"),
}
LISTS = {"configs": "train_config"}  # lora-sweep: a list of training configs
# inputs a remote run's steps read: a path on this machine means nothing to a cluster
REMOTE_INPUTS = ("base_model", "train_data", "eval_data", "reference_data", "adapter_uri", "storage_uri", "payload_log")


def _config_class(parameter: str):
    module, name = CONFIGS[parameter]
    return getattr(importlib.import_module(module), name)


def check_config(parameter: str, value) -> None:
    """Raises ConfigError naming the parameter and field when ``value`` is not a valid config for ``parameter``."""
    from kfp_llmops.config import from_dict

    if not isinstance(value, dict):
        raise ConfigError(f"{parameter} must be a JSON object (a mapping of fields), got {type(value).__name__} {value!r}")
    if parameter == "trainer_job" and not value:  # empty: train in the step itself
        return
    try:
        from_dict(_config_class(parameter), value, where=parameter)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a check inside a config class that met a value of the wrong kind
        raise ConfigError(f"{parameter}: {exc}") from None


def config_errors(arguments: dict) -> list[str]:
    """Every config mistake in ``arguments`` (not just the first), as messages."""
    from kfp_llmops.prompts import check_spec

    errors = []
    for parameter, value in arguments.items():
        items = []
        if parameter == "serving_format":
            from kfp_llmops.artifacts import SERVING_FORMATS

            if value not in SERVING_FORMATS:
                errors.append(f"serving_format must be one of {SERVING_FORMATS}, got {value!r}")
        elif parameter == "onnx_exporter":
            from kfp_llmops.configs import EXPORTERS

            if value not in EXPORTERS:
                errors.append(f"onnx_exporter must be one of {tuple(EXPORTERS)}, got {value!r}")
        elif parameter == "prompt_format":
            try:
                check_spec(value)
            except ConfigError as exc:
                errors.append(str(exc))
        elif parameter in CONFIGS:
            items = [(parameter, parameter, value)]
        elif parameter in LISTS:
            if not isinstance(value, list):
                errors.append(f"{parameter} must be a JSON list of {LISTS[parameter]} objects, got {value!r}")
                continue
            items = [(f"{parameter}[{i}]", LISTS[parameter], v) for i, v in enumerate(value)]
        for where, kind, item in items:
            try:
                check_config(kind, item)
            except ConfigError as exc:
                message = str(exc)
                errors.append(message if message.startswith(where) else f"{where}: {message}")
    return errors


def check_configs(arguments: dict) -> None:
    errors = config_errors(arguments)
    if errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errors))


def check_remote_inputs(arguments: dict, backend: str) -> None:
    """A remote run cannot read files on this machine: refuse paths that exist here (or file:// URIs)."""
    local = [f"{k}={v}" for k, v in arguments.items()
             if k in REMOTE_INPUTS and isinstance(v, str) and v and (v.startswith("file://") or Path(v).expanduser().exists())]
    if local:
        where = "gs://BUCKET/..." if backend == "vertex" else "s3://, gs:// or minio:// (or a path on a volume the cluster mounts)"
        raise UserInputError(f"a {backend} run cannot read files on this machine: {', '.join(local)}. Upload them to "
                             f"{where}, or give a model hub id for base_model")
