"""lora-sweep: validate and prepare once, train a small grid of LoRA configs in parallel (``dsl.ParallelFor``), and
keep the adapter with the lowest validation loss."""

from kfp import dsl
from kfp.dsl import Dataset

from kfp_llmops.components.data.prepare_dataset.component import prepare_dataset
from kfp_llmops.components.data.stop_on_invalid_data.component import stop_on_invalid_data
from kfp_llmops.components.preflight.check_configs.component import check_configs
from kfp_llmops.components.data.validate_dataset.component import validate_dataset
from kfp_llmops.components.registry.fetch_base_model.component import fetch_base_model
from kfp_llmops.components.training.select_best_adapter.component import select_best_adapter
from kfp_llmops.components.training.train_lora.component import train_lora
from kfp_llmops.pipelines.platform import gpu_task, hub_credentials

NAME = "lora-sweep"
DEFAULT_GRID = [{"r": 8, "alpha": 16}, {"r": 16, "alpha": 32}, {"r": 32, "alpha": 64}]


def build(target: str = "vertex"):
    grid = [dict(c) for c in DEFAULT_GRID]  # fresh per build: the KFP compiler edits defaults in place

    @dsl.pipeline(name=NAME, description="Train a grid of LoRA configs in parallel and keep the best by validation loss.")
    def lora_sweep(base_model: str, train_data: str, configs: list = grid, prompt_format: str = "auto",
                   system_prompt: str = "", cache_base_model: bool = True):
        checked = check_configs(configs=configs, prompt_format=prompt_format)
        fetched = fetch_base_model(base_model=base_model, cache=cache_base_model).after(checked)  # one copy, one commit
        hub_credentials(fetched, target)
        fetched.set_caching_options(False)  # an unpinned id or a folder may have changed since a cached run
        train_ds = dsl.importer(artifact_uri=train_data, artifact_class=Dataset, reimport=False)
        validated = validate_dataset(dataset=train_ds.output).after(checked)
        with dsl.If(validated.outputs["Output"] == True, name="data-valid"):  # noqa: E712 (a KFP condition)
            prepared = prepare_dataset(dataset=validated.outputs["validated"], base_model=base_model,
                                       prompt_format=prompt_format, system_prompt=system_prompt,
                                       base=fetched.outputs["base"])
            with dsl.ParallelFor(configs, parallelism=3) as config:
                trained = train_lora(prepared=prepared.outputs["prepared"], base_model=base_model, train_config=config,
                                     base=fetched.outputs["base"])
                gpu_task(trained, target)
            select_best_adapter(adapters=dsl.Collected(trained.outputs["adapter"]))
        with dsl.Else(name="data-invalid"):
            stop_on_invalid_data(report=validated.outputs["report"])

    return lora_sweep
