"""Lineage record and model card for a candidate that passed the gate; never imports kfp."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kfp_llmops.errors import UserInputError


INTEGER_FIELDS = ("rows", "steps", "trainable_parameters", "opset", "size_bytes", "rank", "examples", "greedy_identical",
                  "greedy_prompts", "schema_version")


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
    training_config: dict | None = None,
    cost_config=None,
) -> dict:
    from kfp_llmops.cost import USAGE_KEYS, CostConfig, estimate, usage_from_metadata

    usages = [u for u in (usage_from_metadata("train-lora", adapter.metadata),
                          usage_from_metadata("evaluate-model", evaluation),
                          usage_from_metadata("export", onnx_model.metadata)) if u is not None]
    evaluation = {k: v for k, v in evaluation.items() if k not in USAGE_KEYS}
    return {
        "cost": estimate(usages, cost_config or CostConfig()),
        "model_name": model_name,
        "base_model": base_model,
        # the hub commit (or the local folder's sha256) the adapter was trained on: what base_model meant that day
        "base_model_revision": adapter.metadata.get("base_model_revision") or "",
        "run_id": run_id,
        "source_commit": source_commit,
        "artifacts": {
            "dataset": {
                "uri": dataset.uri,
                "sha256": dataset.metadata.get("sha256"),
                "rows": dataset.metadata.get("rows"),
                "source": dataset.metadata.get("parents", {}).get("dataset"),
                "source_sha256": dataset.metadata.get("source_sha256"),  # the training file as given, before validation
            },
            "adapter": {"uri": adapter.uri, "sha256": adapter.metadata.get("sha256")},
            "merged_weights": {"uri": onnx_model.uri, "sha256": onnx_model.metadata.get("merged_weights_sha256")},
            "onnx_model": {"uri": onnx_model.uri, "sha256": onnx_model.metadata.get("sha256"),
                           "model_sha256": onnx_model.metadata.get("model_sha256")},
        },
        "training": {**{k: adapter.metadata.get(k) for k in ("trainable_parameters", "train_loss_final", "validation_loss",
                                                                 "steps", "tokens_seen", "tracking_run_id")
                        if adapter.metadata.get(k) not in (None, "")},
                     "config": dict(training_config or {})},
        "evaluation": dict(sorted(whole_numbers(evaluation).items())),
        "gate": list(gate_reasons),
        "export": {k: onnx_model.metadata.get(k) for k in ("schema", "format", "opset", "precision", "dtype", "variant",
                                                           "max_abs_logit_diff", "greedy_identical", "greedy_prompts",
                                                           "latency_ms", "size_bytes", "prompt_format", "rank")
                   if onnx_model.metadata.get(k) is not None},
    }


SAFETY_METRICS = ("attack_success_rate", "safety")
SERVED_KINDS = {"hf-safetensors": "Hugging Face folder", "peft-lora-safetensors": "LoRA adapter"}
CARD_METRICS = ("exact_match", "rouge_l", "bleu", "sentence_bleu", "perplexity", "ece", "latency_p50_ms", "latency_p95_ms",
                "tokens_per_s_batch1", "cost_per_1k_tokens", "attack_success_rate")


def evaluation_table(ev: dict) -> list[str]:
    """metric | candidate | each baseline | candidate vs each baseline (delta, or ratio, with its 95 % interval),
    from the evaluation's flat metrics: the same figures, under the same names, as the evaluation report."""
    baselines = sorted({k.split(".", 1)[0] for k in ev if ".delta." in k or ".ratio." in k},
                       key=lambda b: (b != "production", b != "base", b))
    head = ["metric", "candidate", *baselines, *(f"vs {b} (95% CI)" for b in baselines)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in CARD_METRICS:
        if f"candidate.{metric}" not in ev:
            continue
        cells = [metric, _num(ev[f"candidate.{metric}"]), *(_num(ev.get(f"{b}.{metric}")) for b in baselines)]
        for b in baselines:
            if f"{b}.delta.{metric}" in ev:
                cells.append(f"{ev[f'{b}.delta.{metric}']:+.4f}" + _interval(ev, b, "delta", metric, "{:+.4f}"))
            elif f"{b}.ratio.{metric}" in ev:
                cells.append(f"x{ev[f'{b}.ratio.{metric}']:.3f}" + _interval(ev, b, "ratio", metric, "{:.3f}"))
            else:
                cells.append("")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def judge_lines(ev: dict) -> list[str]:
    """The pairwise judge's result, when the evaluation had one."""
    out = []
    for key in sorted(k for k in ev if k.endswith(".judge.win_rate")):
        b = key.split(".", 1)[0]
        out.append(f"\nPairwise judge against {b}: win rate {ev[key]:.4f} (ties count half; 95 % CI "
                   f"[{ev[f'{b}.judge.ci_low']:.4f}, {ev[f'{b}.judge.ci_high']:.4f}]) over {int(ev[f'{b}.judge.examples'])} "
                   f"pairs: {int(ev[f'{b}.judge.wins'])} wins, {int(ev[f'{b}.judge.ties'])} ties, "
                   f"{int(ev[f'{b}.judge.losses'])} losses"
                   + (f"; agreement with human labels {ev[f'{b}.judge.human_agreement']:.2f}"
                      if f"{b}.judge.human_agreement" in ev else "") + ".")
    return out


def slice_table(ev: dict) -> list[str]:
    """The candidate per slice of the eval set (``eval_config.slices``), from the flat metrics: examples, exact match
    with its interval, and the change against each baseline."""
    import re

    found = {}
    for key in ev:
        m = re.fullmatch(r"candidate\.slice\.(.+?)=(.*)\.examples", key)
        if m:
            found.setdefault(m.group(1), []).append(m.group(2))
    if not found:
        return ["No slices were evaluated (set `eval_config.slices` to fields of the eval records)."]
    baselines = sorted({k.split(".", 1)[0] for k in ev if ".slice_delta." in k}, key=lambda b: (b != "production", b))
    head = ["slice", "examples", "exact_match (95% CI)", *(f"vs {b}" for b in baselines)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for field, values in found.items():
        for value in sorted(values):
            at = f"slice.{field}={value}"
            em = f"{ev[f'candidate.{at}.exact_match']:.4f} [{ev[f'candidate.{at}.exact_match_ci_low']:.4f}, " \
                 f"{ev[f'candidate.{at}.exact_match_ci_high']:.4f}]"
            deltas = [f"{ev[f'{b}.slice_delta.{field}={value}.exact_match']:+.4f}" for b in baselines]
            rows.append("| " + " | ".join([f"{field}={value}", str(int(ev[f"candidate.{at}.examples"])), em, *deltas]) + " |")
    return rows


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _interval(ev: dict, baseline: str, kind: str, metric: str, fmt: str) -> str:
    lo, hi = ev.get(f"{baseline}.{kind}_ci_low.{metric}"), ev.get(f"{baseline}.{kind}_ci_high.{metric}")
    return "" if lo is None or hi is None else f" [{fmt.format(lo)}, {fmt.format(hi)}]"


def is_safety(metric: str) -> bool:
    return any(word in metric for word in SAFETY_METRICS)


def model_card(lineage: dict) -> str:
    from kfp_llmops.cost import describe

    ev = lineage["evaluation"]
    art = lineage["artifacts"]
    rows = [
        f"# Model card: {lineage['model_name']}",
        "",
        "## Intended use",
        f"A LoRA fine-tune of `{lineage['base_model']}` (revision `{lineage.get('base_model_revision') or 'unknown'}`) "
        "for the task in its training data; "
        "evaluate again before any other use.",
        "",
        "## Data",
        f"- training dataset: `{art['dataset']['uri']}` ({art['dataset']['rows']} rows, sha256 `{art['dataset']['sha256']}`)",
        "",
        "## Training",
        *(f"- {k}: {v}" for k, v in lineage["training"].items() if k != "config"),
        *([f"- config: `{json.dumps(lineage['training']['config'], sort_keys=True)}`"] if lineage["training"].get("config") else []),
        f"- adapter: `{art['adapter']['uri']}` (sha256 `{art['adapter']['sha256']}`)",
        "",
        "## Evaluation",
        "Candidate and baselines on the same held-out examples (`bleu`: corpus BLEU; `sentence_bleu`: mean per-example "
        "BLEU); the last columns are candidate minus baseline (x: candidate / baseline) with paired bootstrap 95 % "
        "intervals. Every figure is in `lineage.json`.",
        "",
        *evaluation_table(ev),
        *judge_lines(ev),
        "",
        "## Slices",
        "The candidate on each slice of the evaluation set (fairness): the same metrics over the slice's examples.",
        "",
        *slice_table(ev),
        "",
        "## Safety",
        "Prompt-injection / jailbreak probes of the evaluation's safety suite (lower is safer):",
        *([f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in ev.items() if is_safety(k)]
          or ["- no safety suite results were recorded for this run"]),
        "",
        "## Gate",
        *(f"- {r}" for r in lineage["gate"]),
        "",
        "## Serving artifact",
        f"- {SERVED_KINDS.get(lineage['export'].get('format'), 'ONNX')}: "
        f"`{art['onnx_model']['uri']}` (sha256 `{art['onnx_model']['sha256']}`)",
        *([f"- merged weights (base + adapter) sha256: `{art['merged_weights']['sha256']}`"]
          if art["merged_weights"].get("sha256") else
          [f"- served on the base `{lineage['base_model']}` (revision `{lineage.get('base_model_revision') or 'unknown'}`), "
           "not merged: the version is the adapter alone"]),
        *(f"- {k}: {v}" for k, v in lineage["export"].items()),
        "",
        *(["## Cost (estimate)",
           f"- training, evaluation and export: {describe(lineage['cost'])}",
           *(f"- {step}: {value:.4f} {lineage['cost']['currency']}" for step, value in lineage["cost"]["steps"].items()),
           "- accelerator-hours times the prices in the run's cost_config (placeholders unless you set yours)", ""]
          if lineage.get("cost") else []),
        "## Limits",
        "- Evaluated only on the evaluation set above; behaviour outside that distribution is unmeasured.",
        "- Gate and safety results compare against the baselines of this run, not against an absolute standard.",
        "",
        *(["## Registry",
           f"- `{lineage['registry']['registered_model']}` version {lineage['registry']['version']} and "
           f"`{lineage['registry']['adapter_model']}` version {lineage['registry']['adapter_version']} in "
           f"`{lineage['registry']['registry_uri']}`", ""] if lineage.get("registry") else []),
        "## Provenance",
        f"- pipeline run: `{lineage['run_id']}`",
        f"- source commit: `{lineage['source_commit'] or 'unknown'}`",
    ]
    return "\n".join(rows) + "\n"


def dumps(lineage: dict) -> str:
    return json.dumps(lineage, indent=2, sort_keys=True) + "\n"


def register(registry, lineage: dict) -> dict:
    """Registers the compiled model (``<model_name>``) and its adapter (``<model_name>-adapter``) with the lineage as
    tags. Idempotent: the content digest finds an existing version. Returns what was registered."""
    art = lineage["artifacts"]
    for key in ("onnx_model", "adapter"):
        if not art[key].get("sha256"):
            raise UserInputError(f"register_model: the {key} artifact has no sha256 in its metadata ({art[key]['uri']})")
    tags = {
        "base_model": lineage["base_model"],
        "base_model_revision": lineage.get("base_model_revision", ""),
        "run_id": lineage["run_id"],
        "source_commit": lineage["source_commit"],
        "dataset_sha256": art["dataset"]["sha256"] or "",
        "train_data_sha256": art["dataset"].get("source_sha256") or "",  # what `kfp-llmops run --if-data-changed` reads
        "adapter_sha256": art["adapter"]["sha256"],
        "merged_weights_sha256": art["merged_weights"]["sha256"] or "",
        "gate": "passed",
        **({"cost.estimate": f"{lineage['cost']['total']:.6f}", "cost.currency": lineage["cost"]["currency"],
            **{f"cost.{k}_hours": f"{v:.6f}" for k, v in lineage["cost"]["accelerator_hours"].items()}}
           if lineage.get("cost") else {}),
        # the candidate's own figures first: a registry with a label limit (Vertex AI: 64) keeps those
        **{f"eval.{k}": v for k, v in sorted(lineage["evaluation"].items(), key=lambda kv: not kv[0].startswith("candidate."))
           if isinstance(v, (int, float))},
    }
    name = lineage["model_name"]
    description = f"LoRA fine-tune of {lineage['base_model']} (run {lineage['run_id'] or 'local'})"
    # the registry identity is what is served (measurement files left out), so the same inputs give one version
    identity = art["onnx_model"].get("model_sha256") or art["onnx_model"]["sha256"]
    model = registry.register(name, art["onnx_model"]["uri"], identity, tags, description)
    adapter = registry.register(f"{name}-adapter", art["adapter"]["uri"], art["adapter"]["sha256"],
                                {"base_model": lineage["base_model"], "compiled_model_version": model.version}, description)
    return {
        "registry_uri": registry.uri,
        "registered_model": model.name,
        "version": model.version,
        "created": model.created,
        "resource": model.resource,
        "adapter_model": adapter.name,
        "adapter_version": adapter.version,
    }


def read_training_config(adapter_dir: str) -> dict:
    """The TrainConfig that train_lora saved beside the adapter (empty for an adapter from elsewhere)."""
    from pathlib import Path

    path = Path(adapter_dir) / "training_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
