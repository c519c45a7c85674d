"""KFP component: pick the best adapter of a ``dsl.ParallelFor`` sweep by validation loss."""

from typing import List

from kfp import dsl
from kfp.dsl import Input, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def select_best_adapter(adapters: Input[List[Model]], best: Output[Model]) -> float:
    """Copies the adapter with the lowest ``validation_loss`` (from each adapter's metadata) to ``best``; returns its loss."""
    import shutil

    from kfp_llmops.components.training.select_best_adapter import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir

    with user_errors():
        losses = [a.metadata.get("validation_loss") for a in adapters]
        chosen = adapters[core.best_index(losses)]
        with atomic_dir(best.path) as tmp:
            shutil.copytree(chosen.path, tmp, dirs_exist_ok=True)
    best.metadata.update({**chosen.metadata, "parents": {"adapter": chosen.uri}, "sweep_losses": losses,
                          "sweep_size": len(losses)})
    print(f"best of {len(losses)}: {chosen.uri} (validation loss {losses[adapters.index(chosen)]})")
    return float(chosen.metadata["validation_loss"])
