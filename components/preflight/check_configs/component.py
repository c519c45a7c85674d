"""KFP component: every config of the run checked in seconds, before anything is validated, prepared or trained."""

from kfp import dsl

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def check_configs(
    train_config: dict = {},
    eval_config: dict = {},
    gate_config: dict = {},
    rollout_config: dict = {},
    screening: dict = {},
    trainer_job: dict = {},
    approval_config: dict = {},
    cost_config: dict = {},
    staging_config: dict = {},
    monitor_config: dict = {},
    retrain_config: dict = {},
    configs: list = [],
    prompt_format: str = "auto",
    serving_format: str = "onnx",
    onnx_exporter: str = "torchscript",
):
    """Reads each config into its typed class (``configs``: lora-sweep's list of training configs) and fails with
    every mistake named (unknown field, wrong type, out-of-range value; a ``prompt_format`` that is neither a known
    name nor a Jinja template that parses); the steps after it never start."""
    from kfp_llmops.errors import user_errors
    from kfp_llmops.preflight import check_configs as check

    values = {"train_config": train_config, "eval_config": eval_config, "gate_config": gate_config,
              "rollout_config": rollout_config, "screening": screening, "trainer_job": trainer_job,
              "approval_config": approval_config, "cost_config": cost_config,
              "staging_config": staging_config, "monitor_config": monitor_config, "retrain_config": retrain_config,
              "configs": configs,
              "prompt_format": prompt_format, "serving_format": serving_format,
              "onnx_exporter": onnx_exporter}
    with user_errors():
        check(values)
    print("configs valid")
