import numpy as np
import pytest

from kfp_llmops.components.compilation.export_onnx import core
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import load_causal_lm
from kfp_llmops.prompts import format_prompt

PROMPTS = [format_prompt(p) for p in ("reverse: apple bird cake", "sort: zoo map", "copy: sun")]


@pytest.fixture(scope="module")
def model(base_model):
    return load_causal_lm(base_model).eval()


def test_export_matches_torch_on_every_shape(model, tokenizer, tmp_path):
    info = core.export_with_parity(model, tokenizer, PROMPTS, tmp_path)
    assert info["max_abs_logit_diff"] < 1e-4
    assert (tmp_path / "model.onnx").exists() and (tmp_path / "tokenizer.json").exists()
    # dynamic axes: a single token, and a batch of three of length 5, also agree
    batches = [(np.array([[7]]), np.array([[1]])), (np.full((3, 5), 9), np.ones((3, 5), dtype=np.int64))]
    assert core.parity(model, tmp_path / "model.onnx", batches) < 1e-4


def test_parity_failure_names_the_measured_difference(model, tokenizer, tmp_path):
    with pytest.raises(UserInputError, match=r"ONNX parity check failed: max \|logits torch - onnxruntime\| = .* > tolerance 1e-12"):
        core.export_with_parity(model, tokenizer, PROMPTS, tmp_path, core.ExportConfig(parity_tolerance=1e-12))


def test_config_is_validated():
    with pytest.raises(ConfigError, match="opset"):
        core.ExportConfig(opset=9)
