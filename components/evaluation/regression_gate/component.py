"""KFP component: decide from the evaluation metrics whether the candidate may go further."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Metrics, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def regression_gate(
    evaluation: Input[Metrics],
    decision: Output[Markdown],
    min_exact_match_gain: float = 0.01,
    max_perplexity_ratio: float = 1.0,
) -> bool:
    """Returns whether the candidate passed (for ``dsl.If``); ``decision`` holds the reasons, also as metadata.

    A single unnamed output on purpose: kfp.local resolves ``dsl.If`` conditions on ``Output`` only.
    """
    from kfp_llmops.components.evaluation.regression_gate import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file

    with user_errors():
        cfg = core.GateConfig(min_exact_match_gain=min_exact_match_gain, max_perplexity_ratio=max_perplexity_ratio)
        result = core.decide(dict(evaluation.metadata), cfg)
        with atomic_file(decision.path) as tmp:
            tmp.write_text(result.markdown(), encoding="utf-8")
    decision.metadata.update({"passed": result.passed, "reasons": result.reasons, "parents": {"evaluation": evaluation.uri}})
    print(result.markdown())
    return result.passed
