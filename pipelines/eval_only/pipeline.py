"""eval-only: evaluate a given adapter against production (and its base) and gate it, with no training.

For scheduled re-evaluation (a recurring run on Kubeflow, a schedule on Vertex AI) of what is in production or
about to be, on a fresh eval set.
"""

from kfp import dsl
from kfp.dsl import Dataset, Model

from kfp_llmops.components.evaluation.evaluate_model.component import evaluate_model
from kfp_llmops.components.evaluation.regression_gate.component import regression_gate
from kfp_llmops.components.preflight.check_configs.component import check_configs
from kfp_llmops.components.registry.resolve_production.component import resolve_production
from kfp_llmops.pipelines.platform import gpu_task, registry_credentials

NAME = "eval-only"


def build(target: str = "vertex"):
    """The pipeline function for a compile target; on Kubeflow the registry credentials come from a Secret."""

    @dsl.pipeline(name=NAME, description="Evaluate an adapter against production and its base model, and gate it.")
    def eval_only(
        base_model: str,
        adapter_uri: str,
        eval_data: str,
        model_name: str = "llm",
        registry_uri: str = "",
        baseline_models: dict = {},
        eval_config: dict = {},
        gate_config: dict = {},
    ):
        checked = check_configs(eval_config=eval_config, gate_config=gate_config)
        adapter = dsl.importer(artifact_uri=adapter_uri, artifact_class=Model, reimport=False)
        eval_ds = dsl.importer(artifact_uri=eval_data, artifact_class=Dataset, reimport=False)
        production = resolve_production(model_name=model_name, base_model=base_model, registry_uri=registry_uri).after(checked)
        registry_credentials(production, target)
        evaluated = evaluate_model(
            base_model=base_model,
            adapter=adapter.output,
            eval_dataset=eval_ds.output,
            production=production.outputs["production"],
            baseline_models=baseline_models,
            eval_config=eval_config,
        )
        gpu_task(evaluated, target, memory="32G")
        regression_gate(evaluation=evaluated.outputs["results"], gate_config=gate_config)

    return eval_only
