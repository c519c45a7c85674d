"""KFP component: decide from the evaluation whether the candidate may go further."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def regression_gate(
    evaluation: Input[Dataset],
    decision: Output[Markdown],
    gate_config: dict = {},
) -> bool:
    """Returns whether the candidate passed (for ``dsl.If``); ``decision`` lists every check and its reason, also as
    metadata. ``gate_config`` overrides GateConfig thresholds (unknown names are an error).

    A single unnamed output on purpose: kfp.local resolves ``dsl.If`` conditions on ``Output`` only.
    """
    from kfp_llmops.handoff import read_results
    from kfp_llmops.components.evaluation.regression_gate import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file

    with user_errors():
        cfg = core.GateConfig.from_dict(dict(gate_config))
        result = core.decide(read_results(evaluation.path)["comparisons"], cfg)
        with atomic_file(decision.path) as tmp:
            tmp.write_text(result.markdown(), encoding="utf-8")
    decision.metadata.update({"passed": result.passed, "reasons": result.reasons, "parents": {"evaluation": evaluation.uri}})
    print(result.markdown())
    return result.passed
