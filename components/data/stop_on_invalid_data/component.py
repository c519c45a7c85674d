"""KFP component: fail the run, with the validation summary, when the training data did not pass."""

from kfp import dsl
from kfp.dsl import HTML, Input

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def stop_on_invalid_data(report: Input[HTML]):
    """Runs in the ``dsl.Else`` of the validation check: the run fails here, before any training, and the
    validation step's HTML report and GX result stay visible as its outputs."""
    import sys

    summary = report.metadata.get("summary", "data validation failed")
    print(f"ERROR: data validation failed; see the validate-dataset report.\n{summary}", file=sys.stderr, flush=True)
    raise SystemExit(1)
