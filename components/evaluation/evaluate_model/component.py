"""KFP component: evaluate the candidate adapter against the baseline model on a held-out set."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def evaluate_model(
    base_model: str,
    adapter: Input[Model],
    eval_dataset: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[Markdown],
    baseline_model: str = "",
    max_new_tokens: int = 32,
):
    """Perplexity and exact match for candidate (base + adapter) and baseline (``baseline_model`` or the base)."""
    from kfp_llmops.components.evaluation.evaluate_model import core
    from kfp_llmops.datasets import instruction_pairs, read_jsonl
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file
    from kfp_llmops.modeling import load_causal_lm, load_tokenizer

    with user_errors():
        cfg = core.EvalConfig(max_new_tokens=max_new_tokens)
        pairs = instruction_pairs(read_jsonl(eval_dataset.path))
        tokenizer = load_tokenizer(base_model)
        candidate = core.evaluate(core.load_candidate(base_model, adapter.path), tokenizer, pairs, cfg)
        baseline = core.evaluate(load_causal_lm(baseline_model or base_model), tokenizer, pairs, cfg)
        scores = core.compare(candidate, baseline)
        with atomic_file(report.path) as tmp:
            tmp.write_text(core.report_markdown(scores, pairs, candidate, baseline), encoding="utf-8")
    for name, value in scores.items():
        metrics.log_metric(name, value)
    report.metadata.update({"baseline_model": baseline_model or base_model, "parents": {"adapter": adapter.uri, "eval_dataset": eval_dataset.uri}})
    print(scores)
