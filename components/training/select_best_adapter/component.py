"""KFP component: pick the best adapter of a ``dsl.ParallelFor`` sweep by validation loss."""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Input, Markdown, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def select_best_adapter(adapters: Input[List[Model]], best: Output[Model], comparison: Output[HTML],
                        comparison_table: Output[Markdown]) -> float:
    """Copies the adapter with the lowest ``validation_loss`` (from each adapter's metadata) to ``best``; returns its loss.
    ``comparison``: the sweep side by side (the configs that differ, losses, the loss curves overlaid), as
    ``kfp-llmops compare`` draws it; ``comparison_table`` the same as Markdown."""
    import shutil

    from kfp_llmops import compare
    from kfp_llmops.components.training.select_best_adapter import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, atomic_file

    with user_errors():
        losses = [a.metadata.get("validation_loss") for a in adapters]
        chosen = adapters[core.best_index(losses)]
        with atomic_dir(best.path) as tmp:
            shutil.copytree(chosen.path, tmp, dirs_exist_ok=True)
    records = [compare.from_adapter(a.path, dict(a.metadata), name=f"config {i + 1}") for i, a in enumerate(adapters)]
    with atomic_file(comparison.path) as tmp:
        tmp.write_text(compare.compare_html(records, title=f"LoRA sweep: {len(records)} configs"), encoding="utf-8")
    with atomic_file(comparison_table.path) as tmp:
        tmp.write_text(compare.compare_markdown(records), encoding="utf-8")
    best.metadata.update({**chosen.metadata, "parents": {"adapter": chosen.uri}, "sweep_losses": losses,
                          "sweep_size": len(losses)})
    print(f"best of {len(losses)}: {chosen.uri} (validation loss {losses[adapters.index(chosen)]})")
    return float(chosen.metadata["validation_loss"])
