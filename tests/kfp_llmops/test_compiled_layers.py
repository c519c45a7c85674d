"""torch.compile per decoder layer while training (TrainConfig torch_compile): the same losses as eager on packed rows
with attention per document, the layers' own forward back afterwards, and a node without a compiler refused before
anything loads."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kfp_llmops.components.training.train_lora.core import attach_lora
from kfp_llmops.configs import TrainConfig
from kfp_llmops.errors import ConfigError
from kfp_llmops.examples import Example
from kfp_llmops.modeling import check_compiler, compiled_layers, decoder_layers
from kfp_llmops.training import Trainer


def lora_llama():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         pad_token_id=0))
    return attach_lora(model, TrainConfig(max_steps=1, batch_size=1))


def examples(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 40, (1,), generator=g))
        ids = torch.randint(3, 64, (length,), generator=g).tolist()
        out.append(Example(ids, [-100] * (length // 2) + ids[length // 2:]))
    return out


@pytest.mark.slow  # compiling the forward and backward graphs: about 1 to 2 minutes on 2 cores
def test_compiled_training_has_the_eager_losses_and_restores_the_layers():
    data, logs = examples(24), []
    cfg = dict(max_steps=4, batch_size=6, learning_rate=1e-2, warmup_steps=0, pack_length=64)
    eager = Trainer(lora_llama(), TrainConfig(**cfg), pad_id=0).setup(data).train().losses
    model = lora_llama()
    compiled = Trainer(model, TrainConfig(**cfg, torch_compile=True), pad_id=0, log=logs.append).setup(data).train().losses
    assert compiled == pytest.approx(eager, abs=1e-5)  # rows of different widths and counts: one dynamic graph
    assert "torch.compile on 2 decoder layers (dynamic shapes; the first step compiles)" in logs
    assert all("forward" not in layer.__dict__ for layer in decoder_layers(model))


def test_the_layers_forward_is_restored_when_training_fails():
    model = lora_llama()
    layers = decoder_layers(model)
    assert [type(layer).__name__ for layer in layers] == ["LlamaDecoderLayer"] * 2
    with pytest.raises(RuntimeError), compiled_layers(model) as count:
        assert count == 2 and all("forward" in layer.__dict__ for layer in layers)
        raise RuntimeError("training failed")
    assert all("forward" not in layer.__dict__ for layer in layers)
    with compiled_layers(model, enabled=False) as count:
        assert count == 0


def test_a_node_without_a_compiler_is_refused_before_loading(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler on it
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.delenv("CC", raising=False)
    check_compiler(False, cuda=False)  # not asked for: nothing to check
    with pytest.raises(ConfigError, match=r"torch_compile needs a C\+\+ compiler on this node \(g\+\+, c\+\+, clang\+\+"):
        check_compiler(True, cuda=False)
    with pytest.raises(ConfigError, match=r"needs a C compiler on this node \(gcc, cc, clang"):
        check_compiler(True, cuda=True)
    (tmp_path / "my-g++").write_text("#!/bin/sh\n")
    (tmp_path / "my-g++").chmod(0o755)
    monkeypatch.setenv("CXX", "my-g++")
    check_compiler(True, cuda=False)  # $CXX, as inductor reads it


def test_the_setting_is_a_boolean():
    assert TrainConfig.from_dict({"torch_compile": True}).torch_compile is True
    with pytest.raises(ConfigError, match="TrainConfig.torch_compile must be true or false, got 'yes'"):
        TrainConfig.from_dict({"torch_compile": "yes"})
