"""Where the train-lora step trains, chosen from its settings: a Kubeflow Trainer TrainJob or a Vertex AI CustomJob
across nodes (``trainer_job`` with ``num_nodes`` > 1), ``torchrun`` processes inside the step (``nproc_per_node`` > 1),
or this process. Each way writes the adapter into ``out_dir`` and returns the same metrics; never imports kfp."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_llmops.configs import TrainConfig


@dataclass(frozen=True)
class Placement:
    """The step's settings that say where it trains (its parameters of the same names)."""

    nproc_per_node: int = 1
    trainer_job: dict = field(default_factory=dict)
    trainer_platform: str = "kubeflow"

    @property
    def across_nodes(self) -> bool:
        return self.trainer_job.get("num_nodes", 1) > 1


def train_adapter(out_dir: str, *, prepared_dir: str, prepared_sha256: str, base_model: str, cfg: TrainConfig,
                  placement: Placement, tracking_uri: str = "", model_name: str = "") -> dict:
    """Trains and saves the adapter (safetensors, config, history) into ``out_dir``; returns rank 0's metrics. The
    MLflow store ``tracking_uri`` receives the step metrics while it trains (in this process and under torchrun)."""
    from kfp_llmops.modeling import pinned_reference

    if placement.across_nodes:
        from kfp_llmops.components.training.train_lora import trainer_job as tj
        from kfp_llmops.config import from_dict

        spec = from_dict(tj.TrainerJobSpec, placement.trainer_job)
        tj.check_platform(spec, placement.trainer_platform)
        api = None
        if placement.trainer_platform == "kubeflow":
            from kfp_llmops.k8s import custom_objects

            api = custom_objects(tj.TRAINER_TOKEN_DIR)
        return tj.train_on_trainer(api, spec, prepared_dir=prepared_dir, platform=placement.trainer_platform,
                                   prepared_sha256=prepared_sha256, base_model=pinned_reference(base_model),  # nodes of their own
                                   config=cfg.to_dict(), out_dir=out_dir)
    if placement.nproc_per_node > 1:
        from kfp_llmops.components.training.train_lora.distributed import launch

        return launch(prepared_dir, base_model, cfg.to_dict(), out_dir, placement.nproc_per_node,
                      tracking={"uri": tracking_uri, "model_name": model_name})
    from kfp_llmops.components.training.train_lora import core
    from kfp_llmops.modeling import load_tokenizer
    from kfp_llmops.tokenized import read_prepared

    data = read_prepared(prepared_dir)
    tokenizer = load_tokenizer(base_model)
    with core.tracked(tracking_uri, model_name, cfg, base_model=base_model, dataset_sha256=prepared_sha256) as tracker:
        result = core.train(base_model, data.train, data.validation, cfg, pad_id=tokenizer.pad_token_id, tracker=tracker)
    core.save_adapter(result, cfg, out_dir)
    return {**result.metrics(), "tracking_run_id": tracker.run_id}
