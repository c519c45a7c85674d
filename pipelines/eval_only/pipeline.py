"""eval-only: evaluate a given adapter against production (and its base) and gate it, with no training.

For scheduled re-evaluation (a recurring run on Kubeflow, a schedule on Vertex AI) of what is in production or
about to be, on a fresh eval set.
"""

from kfp import dsl
from kfp.dsl import Dataset, Model

from kfp_llmops.components.evaluation.evaluate_model.component import evaluate_model
from kfp_llmops.components.evaluation.regression_gate.component import regression_gate

NAME = "eval-only"


def build(target: str = "vertex"):
    """The pipeline function for a compile target; no kfp-kubernetes settings are needed by these steps."""
    del target

    @dsl.pipeline(name=NAME, description="Evaluate an adapter against production and its base model, and gate it.")
    def eval_only(
        base_model: str,
        adapter_uri: str,
        eval_data: str,
        baseline_models: dict = {},
        eval_config: dict = {},
        gate_config: dict = {},
    ):
        adapter = dsl.importer(artifact_uri=adapter_uri, artifact_class=Model, reimport=False)
        eval_ds = dsl.importer(artifact_uri=eval_data, artifact_class=Dataset, reimport=False)
        evaluated = evaluate_model(
            base_model=base_model,
            adapter=adapter.output,
            eval_dataset=eval_ds.output,
            baseline_models=baseline_models,
            eval_config=eval_config,
        )
        regression_gate(evaluation=evaluated.outputs["results"], gate_config=gate_config)

    return eval_only
