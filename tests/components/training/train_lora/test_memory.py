"""The memory plan on the shapes users bring (published config.json values), built on the meta device: exact
parameter counts, and a 24 GB GPU that cannot hold an fp32 8B model is told so, with what would fit, before loading."""

import pytest
from transformers import AutoConfig

from kfp_llmops.components.training.train_lora import memory
from kfp_llmops.components.training.train_lora.core import TrainConfig
from kfp_llmops.errors import ConfigError

LLAMA_3_8B = dict(vocab_size=128256, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                  intermediate_size=14336, tie_word_embeddings=False, max_position_embeddings=8192)
QWEN2_5_0_5B = dict(vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                    intermediate_size=4864, tie_word_embeddings=True, max_position_embeddings=32768)


def test_parameter_counts_are_exact():
    total, lora, _ = memory.count(AutoConfig.for_model("llama", **LLAMA_3_8B), "all-linear", 16)
    assert total == 8_030_261_248  # Llama 3 8B
    # r=16 on q, k, v, o, gate, up, down of 32 layers: 16 * (in + out) summed
    per_layer = 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 2 + (14336 + 4096))
    assert lora == 32 * per_layer == 41_943_040
    total, _, _ = memory.count(AutoConfig.for_model("qwen2", **QWEN2_5_0_5B), "all-linear", 16)
    assert total == 494_032_768  # Qwen2.5-0.5B


def test_an_8b_model_in_fp32_does_not_fit_a_24_gb_gpu_and_says_what_would(tmp_path):
    AutoConfig.for_model("llama", **LLAMA_3_8B).save_pretrained(tmp_path)  # config.json only: no weights needed
    with pytest.raises(ConfigError) as err:
        memory.check(str(tmp_path), TrainConfig(batch_size=8, max_seq_length=2048, precision="bf16"), cuda=True,
                     device_gib=22.0, log=lambda _: None)
    text = str(err.value)
    assert "8.03B parameters in fp32: weights 29.9 GiB" in text and "of 22.0 GiB" in text
    assert ("What would fit: base_dtype: bf16, gradient_checkpointing: true, batch_size: 1, gradient_accumulation: 8 "
            "(20.1 GiB)") in text
    # on an 80 GB GPU, gradient checkpointing alone makes it fit
    with pytest.raises(ConfigError, match=r"What would fit: gradient_checkpointing: true \(57\.6 GiB\)"):
        memory.check(str(tmp_path), TrainConfig(batch_size=8, max_seq_length=2048, precision="bf16"), cuda=True,
                     device_gib=79.0, log=lambda _: None)


def test_a_small_model_fits_and_checkpointing_is_suggested_when_it_suffices(tmp_path):
    config = AutoConfig.for_model("qwen2", **QWEN2_5_0_5B)
    cfg = TrainConfig(batch_size=16, max_seq_length=2048)
    wide = memory.plan(config, cfg, device_gib=22.0, weight_dtype="fp32")
    assert not wide.fits  # 16 x 2048 tokens of activations without checkpointing
    assert memory.suggestions(config, cfg, device_gib=22.0, weight_dtype="fp32")[0].startswith("gradient_checkpointing: true")
    small = memory.plan(config, TrainConfig(batch_size=4, max_seq_length=1024, gradient_checkpointing=True),
                        device_gib=22.0, weight_dtype="fp32")
    assert small.fits and 1.8 < small.weights_gib < 1.9  # 494M x 4 bytes


def test_the_demo_model_fits_this_machine(base_model):
    plan = memory.check(base_model, TrainConfig(), cuda=False, log=lambda _: None)
    assert plan.fits and 0.7e6 < plan.parameters < 1e6  # the ~0.8M-parameter demo Llama


def test_a_24_gb_gpu_is_told_which_precision_fits_an_8b_model(tmp_path):
    AutoConfig.for_model("llama", **LLAMA_3_8B).save_pretrained(tmp_path)
    config = AutoConfig.for_model("llama", **LLAMA_3_8B)
    cfg = TrainConfig(batch_size=8, max_seq_length=2048, precision="bf16")
    bf16 = memory.plan(config, cfg, device_gib=22.0, weight_dtype="bf16")
    nf4 = memory.plan(config, cfg, device_gib=22.0, weight_dtype="nf4")
    assert 14.9 < bf16.weights_gib < 15.0  # 8.03B x 2 bytes
    # NF4 linear layers (4.127 bits with double quantization) + 1.05B embedding and head parameters in bf16
    assert 5.3 < nf4.weights_gib < 5.5
    # fp32 weights cannot fit at any batch size: bf16 is suggested; bf16 does not fit: QLoRA is
    assert memory.suggestions(config, cfg, device_gib=22.0, weight_dtype="fp32")[0].startswith("base_dtype: bf16, gradient_checkpointing: true")
    with pytest.raises(ConfigError, match=r"8.03B parameters in bf16: weights 15.0 GiB.*What would fit: quantization: nf4 \(QLoRA\)"):
        memory.check(str(tmp_path), TrainConfig(batch_size=8, max_seq_length=2048, precision="bf16", gradient_checkpointing=True),
                     cuda=True, device_gib=16.0, log=lambda _: None, weight_dtype="bf16")
    fits = memory.check(str(tmp_path), TrainConfig(batch_size=4, max_seq_length=2048, precision="bf16", gradient_checkpointing=True),
                        cuda=True, device_gib=22.0, log=lambda _: None, weight_dtype="nf4")
    assert fits.fits and fits.weight_dtype == "nf4"
