"""The compiled-model metadata contract (kfp_llmops.OnnxModel on system.Model)."""

import pytest
from kfp import dsl

from kfp_llmops.artifacts import ONNX_MODEL, OnnxModelMetadata
from kfp_llmops.errors import UserInputError

GOOD = dict(format="triton-onnx-repository", opset=18, precision="fp32", size_bytes=3_400_000, max_abs_logit_diff=4e-6,
            greedy_identical=8, greedy_prompts=8, latency_ms=0.7, variant="ort-optimized")


def test_round_trip_through_kfp_floats():
    meta = OnnxModelMetadata(**GOOD).to_metadata()
    assert meta["schema"] == ONNX_MODEL and meta["schema_version"] == 1
    from_kfp = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in meta.items()}
    assert OnnxModelMetadata.from_metadata(from_kfp) == OnnxModelMetadata(**GOOD)


@pytest.mark.parametrize("change, message", [
    ({"precision": "fp8"}, "precision 'fp8' is not one of"),
    ({"opset": 9}, "opset must be an integer >= 13, got 9"),
    ({"greedy_identical": 9}, "greedy_identical (9) must be within 0..greedy_prompts (8)"),
    ({"format": "gguf"}, "format 'gguf' is not one of"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OnnxModelMetadata(**{**GOOD, **change})


def test_a_model_that_is_not_compiled_is_named():
    with pytest.raises(UserInputError, match=r"the model artifact is not a compiled model \(kfp_llmops.OnnxModel\): metadata lacks \['format', 'opset'"):
        OnnxModelMetadata.from_metadata({"sha256": "ab"})


def test_kfp_rejects_a_custom_schema_title_so_the_contract_rides_on_system_model():
    class OnnxModel(dsl.Artifact):
        schema_title = ONNX_MODEL

    with pytest.raises(TypeError, match="must belong to `system` or `google` namespace"):
        @dsl.component
        def export(model: dsl.Output[OnnxModel]):
            pass
