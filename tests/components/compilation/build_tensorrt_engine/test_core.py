import pytest
from kfp.dsl import Model

from kfp_llmops.components.compilation.build_tensorrt_engine import core
from kfp_llmops.components.compilation.build_tensorrt_engine.component import build_tensorrt_engine
from kfp_llmops.errors import ConfigError, UserInputError

torch = pytest.importorskip("torch")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fail-fast path of a machine without a GPU")


@no_gpu
def test_fails_at_once_without_a_gpu(tmp_path, capsys):
    with pytest.raises(UserInputError, match="needs an NVIDIA GPU and this node has none"):
        core.build_engine(tmp_path / "model.onnx", tmp_path / "model.plan")
    with pytest.raises(SystemExit):
        build_tensorrt_engine.python_func(onnx_model=Model(uri=str(tmp_path)), engine=Model(uri=str(tmp_path / "engine")))
    assert "needs an NVIDIA GPU" in capsys.readouterr().err
    assert not (tmp_path / "engine").exists()


def test_profiles_cover_empty_past_and_the_configured_maxima():
    shapes = {"input_ids": [-1, -1], "attention_mask": [-1, -1], "past_key_values.0.key": [-1, 2, -1, 32]}
    p = core.profiles(shapes, core.TensorRTConfig(max_batch=4, max_sequence=256, opt_sequence=64))
    assert p["input_ids"] == ((1, 1), (1, 64), (4, 256))
    assert p["past_key_values.0.key"] == ((1, 2, 0, 32), (1, 2, 64, 32), (4, 2, 256, 32))
    with pytest.raises(UserInputError, match="unexpected model input 'pixel_values'"):
        core.profiles({"pixel_values": [-1, 3, 224, 224]}, core.TensorRTConfig())


def test_config_is_validated():
    with pytest.raises(ConfigError, match="precision"):
        core.TensorRTConfig(precision="int4")
