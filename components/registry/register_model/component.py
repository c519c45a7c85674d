"""KFP component: record lineage and write the model card of a gated candidate."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def register_model(
    model_name: str,
    base_model: str,
    dataset: Input[Dataset],
    adapter: Input[Model],
    onnx_model: Input[Model],
    evaluation: Input[Metrics],
    gate_decision: Input[Markdown],
    model_card: Output[Markdown],
    lineage: Output[Artifact],
    source_commit: str = "",
    run_id: str = "",
    registry_uri: str = "",
    cost_config: dict = {},
):
    """``onnx_model``: the model to serve, an ONNX Triton repository (export_onnx), a merged Hugging Face folder
    (merge_adapter) or the adapter alone (package_adapter, served on its base). Registers it and the adapter (MLflow by default, or Vertex AI Model Registry) with their
    lineage; writes ``lineage.json`` (digests, parents, metrics, gate, registered versions, the estimated cost of
    training, evaluation and export priced with ``cost_config``) and a Markdown model card."""
    from kfp_llmops.artifacts import served_model_metadata
    from kfp_llmops.cost import CostConfig
    from kfp_llmops.components.registry.register_model import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file
    from kfp_llmops.registry import open_registry

    with user_errors():
        served_model_metadata(dict(onnx_model.metadata), where=f"register_model's onnx_model ({onnx_model.uri})")
        cost_cfg = CostConfig.from_dict(cost_config)
    record = core.build_lineage(
        model_name=model_name,
        base_model=base_model,
        dataset=core.ArtifactRef(dataset.uri, dict(dataset.metadata)),
        adapter=core.ArtifactRef(adapter.uri, dict(adapter.metadata)),
        onnx_model=core.ArtifactRef(onnx_model.uri, dict(onnx_model.metadata)),
        evaluation=dict(evaluation.metadata),
        gate_reasons=list(gate_decision.metadata.get("reasons", [])),
        source_commit=source_commit,
        run_id=run_id,
        training_config=core.read_training_config(adapter.path),
        cost_config=cost_cfg,
    )
    with user_errors():
        registry = open_registry(registry_uri)
        record["registry"] = core.register(registry, record)
    print(f"registered {record['registry']}")
    with atomic_file(lineage.path) as tmp:
        tmp.write_text(core.dumps(record), encoding="utf-8")
    with atomic_file(model_card.path) as tmp:
        tmp.write_text(core.model_card(record), encoding="utf-8")
    if hasattr(registry, "attach"):  # MLflow: the card and lineage beside the version's files in its run
        registry.attach(record["registry"]["registered_model"], record["registry"]["version"],
                        {"model_card.md": model_card.path, "lineage.json": lineage.path})
    lineage.metadata.update({"run_id": run_id, "base_model": base_model, "sha256": record["artifacts"]["onnx_model"]["sha256"],
                             "parents": {k: v["uri"] for k, v in record["artifacts"].items()},
                             **record["registry"]})
    model_card.metadata.update(lineage.metadata)
