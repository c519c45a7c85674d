"""KFP component: build a TensorRT engine from the exported ONNX decoder (on a GPU node)."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def build_tensorrt_engine(
    onnx_model: Input[Model],
    engine: Output[Model],
    model_name: str = "llm",
    precision: str = "fp16",
    max_batch: int = 8,
    max_sequence: int = 512,
):
    """Writes ``model.plan`` from ``<model_name>/1/model.onnx`` of the repository; fails at once without a GPU."""
    from pathlib import Path

    from kfp_llmops.components.compilation.build_tensorrt_engine import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage

    with user_errors():
        cfg = core.TensorRTConfig(precision=precision, max_batch=max_batch, max_sequence=max_sequence,
                                  opt_sequence=min(128, max_sequence))
        core.require_gpu()
        with atomic_dir(engine.path) as tmp:
            info = core.build_engine(Path(onnx_model.path) / model_name / "1" / "model.onnx", Path(tmp) / "model.plan", cfg)
    engine.metadata.update(lineage(path=engine.path, parents={"onnx_model": onnx_model.uri}, format="tensorrt-plan", **info))
