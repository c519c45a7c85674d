"""KFP component: train a LoRA adapter on a prepared dataset."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def train_lora(
    prepared: Input[Dataset],
    base_model: str,
    train_config: dict,
    adapter: Output[Model],
    metrics: Output[Metrics],
    loss_curve: Output[HTML],
    nproc_per_node: int = 1,
    trainer_job: dict = {},
    trainer_platform: str = "kubeflow",
    tracking_uri: str = "",
    model_name: str = "",
    base: Input[Model] = None,
):
    """Trains LoRA on ``base_model`` (hub id or path); ``train_config`` holds the TrainConfig fields to override.
    ``nproc_per_node`` > 1 runs data-parallel under torchrun inside this task (one process per GPU, or CPU/gloo).
    ``trainer_job`` with ``num_nodes`` > 1 (TrainerJobSpec fields: namespace, num_nodes, shared_dir, ...) runs it as a
    Kubeflow Trainer TrainJob across nodes instead (``trainer_platform`` kubeflow), or a Vertex AI CustomJob with worker
    pools (``trainer_platform`` vertex: the pipelines compiled for Vertex AI set it), and waits for it.
    ``tracking_uri`` (an MLflow store: the pipelines pass their registry URI) receives the step metrics while the step
    trains, in the experiment of ``model_name``; the adapter records the step's accelerator usage for the cost
    estimate. ``base`` (fetch_base_model's output): the base model is loaded from the run's copy (a Trainer
    job's nodes load the commit it pinned)."""
    import time

    started = time.monotonic()
    from kfp_llmops.components.training.train_lora.dispatch import Placement, train_adapter
    from kfp_llmops.components.training.train_lora.report import loss_curve_html
    from kfp_llmops.configs import TrainConfig
    from kfp_llmops.cost import usage
    from kfp_llmops.errors import user_errors
    from kfp_llmops.history import read_history
    from kfp_llmops.lineage import atomic_dir, atomic_file, lineage
    from kfp_llmops.modeling import resolved_revision, use_base_model
    from kfp_llmops.prompts import PromptFormat

    with user_errors():
        use_base_model(base_model, base.path if base is not None else None)
        cfg = TrainConfig.from_dict(train_config)
        placement = Placement(nproc_per_node, trainer_job, trainer_platform)
        with atomic_dir(adapter.path) as tmp:
            values = train_adapter(str(tmp), prepared_dir=prepared.path, prepared_sha256=prepared.metadata.get("sha256", ""),
                                   base_model=base_model, cfg=cfg, placement=placement, tracking_uri=tracking_uri,
                                   model_name=model_name)
            PromptFormat.load(prepared.path).save(tmp)  # the adapter is served in the format it was trained in
    with atomic_file(loss_curve.path) as tmp:
        tmp.write_text(loss_curve_html(read_history(adapter.path), values["validation_loss"]), encoding="utf-8")
    loss_curve.metadata.update({"parents": {"adapter": adapter.uri}})
    adapter.metadata.update(
        lineage(path=adapter.path, parents={"prepared": prepared.uri}, base_model=base_model, format="peft-lora-safetensors",
                base_model_revision=resolved_revision(base_model), prompt_format=PromptFormat.load(adapter.path).kind,
                dataset_sha256=prepared.metadata.get("sha256"), **values,
                **usage(started, processes=nproc_per_node))
    )
    for name, value in values.items():
        if isinstance(value, (int, float)):
            metrics.log_metric(name, value)
