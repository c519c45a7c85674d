"""Lineage record and model card for a candidate that passed the gate; never imports kfp."""

from __future__ import annotations

import json
from dataclasses import dataclass


INTEGER_FIELDS = ("rows", "steps", "trainable_parameters", "opset", "size_bytes", "examples")


def whole_numbers(values: dict) -> dict:
    """KFP hands integer metadata back as floats (2000.0); restores the integers we wrote."""
    return {k: int(v) if k in INTEGER_FIELDS and isinstance(v, float) and v.is_integer() else v for k, v in values.items()}


@dataclass(frozen=True)
class ArtifactRef:
    """What the registry keeps of one input artifact: its URI and its metadata (digest, rows, ...)."""

    uri: str
    metadata: dict

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", whole_numbers(self.metadata))


def build_lineage(
    *,
    model_name: str,
    base_model: str,
    dataset: ArtifactRef,
    adapter: ArtifactRef,
    onnx_model: ArtifactRef,
    evaluation: dict,
    gate_reasons: list[str],
    source_commit: str,
    run_id: str,
) -> dict:
    return {
        "model_name": model_name,
        "base_model": base_model,
        "run_id": run_id,
        "source_commit": source_commit,
        "artifacts": {
            "dataset": {
                "uri": dataset.uri,
                "sha256": dataset.metadata.get("sha256"),
                "rows": dataset.metadata.get("rows"),
                "source": dataset.metadata.get("parents", {}).get("dataset"),
            },
            "adapter": {"uri": adapter.uri, "sha256": adapter.metadata.get("sha256")},
            "onnx_model": {"uri": onnx_model.uri, "sha256": onnx_model.metadata.get("sha256")},
        },
        "training": {k: adapter.metadata.get(k) for k in ("trainable_parameters", "train_loss_final", "validation_loss", "steps")},
        "evaluation": dict(sorted(whole_numbers(evaluation).items())),
        "gate": list(gate_reasons),
        "export": {k: onnx_model.metadata.get(k) for k in ("opset", "precision", "max_abs_logit_diff", "size_bytes")},
    }


def model_card(lineage: dict) -> str:
    ev = lineage["evaluation"]
    art = lineage["artifacts"]
    rows = [
        f"# Model card: {lineage['model_name']}",
        "",
        "## Intended use",
        f"A LoRA fine-tune of `{lineage['base_model']}` for the task in its training data; "
        "evaluate again before any other use.",
        "",
        "## Data",
        f"- training dataset: `{art['dataset']['uri']}` ({art['dataset']['rows']} rows, sha256 `{art['dataset']['sha256']}`)",
        "",
        "## Training",
        *(f"- {k}: {v}" for k, v in lineage["training"].items()),
        f"- adapter: `{art['adapter']['uri']}` (sha256 `{art['adapter']['sha256']}`)",
        "",
        "## Evaluation",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in ev.items()),
        "",
        "## Gate",
        *(f"- {r}" for r in lineage["gate"]),
        "",
        "## Serving artifact",
        f"- ONNX: `{art['onnx_model']['uri']}` (sha256 `{art['onnx_model']['sha256']}`)",
        *(f"- {k}: {v}" for k, v in lineage["export"].items()),
        "",
        "## Provenance",
        f"- pipeline run: `{lineage['run_id']}`",
        f"- source commit: `{lineage['source_commit'] or 'unknown'}`",
    ]
    return "\n".join(rows) + "\n"


def dumps(lineage: dict) -> str:
    return json.dumps(lineage, indent=2, sort_keys=True) + "\n"
