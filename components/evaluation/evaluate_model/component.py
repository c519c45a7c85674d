"""KFP component: evaluate the candidate adapter against baselines on a held-out set, side by side."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def evaluate_model(
    base_model: str,
    adapter: Input[Model],
    eval_dataset: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    results: Output[Dataset],
    production: Input[Model] = None,
    baseline_models: dict = {},
    eval_config: dict = {},
    base: Input[Model] = None,
):
    """Quality, golden-prompt regression, speed and cost, and safety for the candidate (base + adapter, merged as
    served) and each baseline, side by side: the base model (``base``), the registry's production version when
    ``production`` (from resolve_production) found one, and ``baseline_models`` (names to model ids or paths, adapter
    folders, or ``{"base_model", "adapter"}``; a ``production`` entry there overrides the registry's).
    ``eval_config`` overrides EvalConfig fields. ``metrics`` also records the step's accelerator usage (for the
    run's cost estimate). ``base`` (fetch_base_model's output): every model on this base is loaded from the run's
    copy."""
    import json
    import time

    started = time.monotonic()

    from kfp_llmops.components.evaluation.evaluate_model import core
    from kfp_llmops.handoff import write_results
    from kfp_llmops.components.evaluation.evaluate_model.report import render_html
    from kfp_llmops.cost import usage
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, atomic_file, lineage
    from kfp_llmops.modeling import use_base_model

    with user_errors():
        use_base_model(base_model, base.path if base is not None else None)
        cfg = core.EvalConfig.from_dict(dict(eval_config))
        pairs, slices = core.read_eval_set(eval_dataset.path, cfg)
        info = None
        if production is not None:
            from kfp_llmops.handoff import read_production

            info = read_production(production.path)
            if info["found"]:
                print(f"baseline 'production': {info['model_name']} version {info['version']} from {info['registry_uri']}")
        named = core.named_baselines(base_model, info, dict(baseline_models))
        result = core.evaluate_adapter(base_model, adapter.path, pairs, named, cfg, slices)
    with atomic_dir(results.path) as tmp:
        write_results(result, tmp)
    with atomic_file(report.path) as tmp:
        tmp.write_text(render_html(result), encoding="utf-8")
    parents = {"adapter": adapter.uri, "eval_dataset": eval_dataset.uri,
               **({"production": production.uri} if "production" in named and production is not None else {})}
    results.metadata.update(lineage(path=results.path, parents=parents, base_model=base_model, baselines=named,
                                    examples=len(pairs), format="evaluation-results",
                                    slices={f: sorted(set(v)) for f, v in slices.items()}))
    report.metadata.update({"parents": parents})
    for name, value in core.flat_metrics(result).items():
        metrics.log_metric(name, value)
    metrics.metadata.update(usage(started))
    print(json.dumps({k: v for k, v in core.flat_metrics(result).items() if k.startswith("candidate.")}, indent=1))
