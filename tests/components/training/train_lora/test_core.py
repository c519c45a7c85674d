import json

import pytest
import torch

from kfp_llmops.components.data.prepare_dataset.core import prepare
from kfp_llmops.components.training.train_lora import core
from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.errors import ConfigError


EXACT_LOSSES = [5.828464, 5.49203, 5.250776, 5.257924, 5.173542]  # the same with AVX-512, AVX2 or no SIMD, 1 or 2 threads
EXACT_VALIDATION_LOSS = 5.217512


@pytest.fixture(scope="module")
def small_split(demo_assets, tokenizer):
    return prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer)


def test_config_rejects_unknown_fields_naming_them():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['rank'\]"):
        core.TrainConfig.from_dict({"rank": 8})


@pytest.mark.parametrize("field, value", [("r", 0), ("r", -4), ("max_steps", 0), ("dropout", 1.0), ("learning_rate", 0.0)])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field}"):
        core.TrainConfig.from_dict({field: value})


def test_config_accepts_whole_floats_for_integers_as_kfp_sends_them():
    cfg = core.TrainConfig.from_dict({"r": 8.0, "max_steps": 20.0})
    assert (cfg.r, cfg.max_steps) == (8, 20)
    assert core.TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_target_module_the_model_lacks_fails_before_training(base_model, small_split, tokenizer):
    cfg = core.TrainConfig(target_modules=["no_such_proj"], max_steps=1)
    with pytest.raises(ConfigError, match=r"TrainConfig\.target_modules=\['no_such_proj'\] does not fit the model"):
        core.train(base_model, small_split.train, small_split.validation, cfg, pad_id=tokenizer.pad_token_id, log=lambda _: None)


@pytest.fixture(scope="module")
def seeded_base(base_model, tmp_path_factory) -> str:
    """The demo model's architecture, initialised from seed 0 and not pretrained: the same weights on every machine
    (the demo base is pretrained for 300 steps, and GEMM kernels that differ by CPU (AVX2, AVX-512) move its weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_model))
    out = tmp_path_factory.mktemp("seeded-base")
    model.save_pretrained(out, safe_serialization=True)
    return str(out)


def test_exact_losses_on_the_demo_architecture(seeded_base, small_split, tokenizer, tmp_path):
    """torchtune-style: fixed seed, fixed weights, fixed data, exact losses (CPU fp32, torch 2.13; the demo's ChatML
    format and tokenizer, which are built the same everywhere)."""
    cfg = core.TrainConfig(max_steps=5, batch_size=8, warmup_steps=1)
    result = core.train(seeded_base, small_split.train, small_split.validation, cfg, pad_id=tokenizer.pad_token_id, log=lambda _: None)
    assert result.losses == pytest.approx(EXACT_LOSSES, abs=1e-4)
    assert result.validation_loss == pytest.approx(EXACT_VALIDATION_LOSS, abs=1e-4)
    assert result.trainable_parameters == 155648

    core.save_adapter(result, cfg, tmp_path)
    assert (tmp_path / "adapter_model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    modules = json.loads((tmp_path / "adapter_config.json").read_text())["target_modules"]
    assert modules == sorted(modules)  # peft writes a set; sorted, the adapter's digest is reproducible
    assert json.loads((tmp_path / "training_config.json").read_text()) == cfg.to_dict()
    assert json.loads((tmp_path / "losses.json").read_text()) == result.losses


def test_epochs_set_the_number_of_steps():
    cfg = core.TrainConfig.from_dict({"epochs": 2.0, "batch_size": 8, "gradient_accumulation": 2})
    assert cfg.total_steps(100) == 13  # ceil(2 * 100 / 16)
    assert core.TrainConfig(max_steps=7).total_steps(100) == 7


def test_gradient_accumulation_of_two_halves_matches_the_full_batch_closely(base_model, small_split, tokenizer):
    full = core.train(base_model, small_split.train, small_split.validation,
                      core.TrainConfig(max_steps=4, batch_size=16, warmup_steps=1, pack_length=0),
                      pad_id=tokenizer.pad_token_id, log=lambda _: None)
    halves = core.train(base_model, small_split.train, small_split.validation,
                        core.TrainConfig(max_steps=4, batch_size=8, gradient_accumulation=2, warmup_steps=1, pack_length=0),
                        pad_id=tokenizer.pad_token_id, log=lambda _: None)
    # the first step sees the same 16 examples: the mean of two micro-batch means vs one mean over all tokens
    assert halves.losses[0] == pytest.approx(full.losses[0], rel=0.03)
    with pytest.raises(ConfigError, match="TrainConfig.gradient_accumulation"):
        core.TrainConfig(gradient_accumulation=0)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"precision": "fp16"}, r"TrainConfig\.precision must be one of \('auto', 'fp32', 'bf16'\), got 'fp16'"),
        ({"early_stopping_patience": 2}, r"TrainConfig\.early_stopping_patience needs eval_every > 0"),
        ({"max_seq_length": -1}, r"TrainConfig\.max_seq_length must be an integer >= 0, got -1"),
        ({"eval_every": 2.5}, r"TrainConfig\.eval_every must be an integer, got 2\.5"),
    ],
)
def test_new_fields_are_validated(values, message):
    with pytest.raises(ConfigError, match=message):
        core.TrainConfig.from_dict(values)


def test_precision_auto_is_fp32_on_cpu_and_bf16_on_a_gpu_that_has_it():
    cfg = core.TrainConfig()
    assert (cfg.resolved_precision(False, False), cfg.resolved_precision(True, True), cfg.resolved_precision(True, False)) == ("fp32", "bf16", "fp32")
    assert core.TrainConfig(precision="fp32").resolved_precision(True, True) == "fp32"


def _train(base_model, split, tokenizer, **fields):
    cfg = core.TrainConfig(batch_size=8, warmup_steps=1, **{"max_steps": 3, **fields})
    lines = []
    result = core.train(base_model, split.train, split.validation, cfg, pad_id=tokenizer.pad_token_id, log=lines.append)
    return result, lines


def test_gradient_checkpointing_gives_the_same_losses(base_model, small_split, tokenizer):
    plain, _ = _train(base_model, small_split, tokenizer)
    checkpointed, lines = _train(base_model, small_split, tokenizer, gradient_checkpointing=True)
    assert checkpointed.losses == pytest.approx(plain.losses, abs=1e-5)
    assert "gradient checkpointing" in lines[0]


def test_bf16_autocast_trains_close_to_fp32(base_model, small_split, tokenizer):
    fp32, _ = _train(base_model, small_split, tokenizer, precision="fp32")
    bf16, lines = _train(base_model, small_split, tokenizer, precision="bf16")
    assert any("bf16" in line for line in lines if line.startswith("LoRA r="))
    assert bf16.losses == pytest.approx(fp32.losses, abs=0.05) and bf16.losses != fp32.losses


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    """The loop's own rule on a scripted validation loss (which way a real one goes after a given step depends on the
    CPU's GEMM kernels, as the pretrained demo weights do): best at the second evaluation, then two worse ones with
    patience 2: stopped at step 8 of 30, and the weights are those the best evaluation saw."""
    from tiny_architectures import tiny_config
    from transformers import AutoModelForCausalLM

    from kfp_llmops.configs import TrainConfig
    from kfp_llmops.examples import Example
    from kfp_llmops.training import Trainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", 64, pad_token_id=0))
    data = [Example(input_ids=list(range(3, 3 + n)), labels=list(range(3, 3 + n))) for n in (9, 12, 7, 15)]
    scripted, seen = iter([3.0, 2.0, 2.5, 2.6, 1.0]), []

    def evaluate():
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return next(scripted)

    lines = []
    cfg = TrainConfig(max_steps=30, batch_size=2, learning_rate=1e-2, warmup_steps=0, pack_length=0, eval_every=2,
                      early_stopping_patience=2)
    run = Trainer(model, cfg, pad_id=0, validate=evaluate, log=lines.append).setup(data).train()
    assert len(run.losses) == 8 and run.evaluations == [(2, 3.0), (4, 2.0), (6, 2.5), (8, 2.6)]
    assert "early stopping at step 8: no improvement in 2 evaluations (best 2.0000 at step 4)" in lines
    assert any(line.startswith("restored the best evaluated weights") for line in lines)
    assert all(torch.equal(p, seen[1][n]) for n, p in model.named_parameters())
    assert not all(torch.equal(p, seen[3][n]) for n, p in model.named_parameters())


def test_train_with_early_stopping_ends_on_its_best_evaluation(base_model, small_split, tokenizer):
    """Wired through TrainConfig on the demo model: evaluations every 2 steps, and the result's validation loss is
    the best of them (restored when a later one was worse), whether or not this machine's run stopped early."""
    result, lines = _train(base_model, small_split, tokenizer, max_steps=12, learning_rate=0.3, eval_every=2,
                           early_stopping_patience=1)
    steps = [s for s, _ in result.evaluations]
    assert steps == list(range(2, 2 * len(steps) + 1, 2)) and steps[-1] == len(result.losses)
    assert (len(result.losses) < 12) == any(line.startswith("early stopping at step") for line in lines)
    assert result.validation_loss == pytest.approx(min(v for _, v in result.evaluations), abs=1e-5)


def test_max_seq_length_cuts_examples(base_model, small_split, tokenizer):
    result, _ = _train(base_model, small_split, tokenizer, max_steps=1, max_seq_length=12, pack_length=0)
    assert result.real_tokens == 8 * 12  # every demo example is longer than 12 tokens


def test_base_weights_dtype_follows_the_device():
    from kfp_llmops.modeling import weight_dtype

    assert weight_dtype(cuda=True, bf16_supported=True) == "bf16"  # A100, L4, H100
    assert weight_dtype(cuda=True, bf16_supported=False) == "fp16"  # T4, V100
    assert weight_dtype(cuda=False, bf16_supported=False) == "fp32"  # CPU
    assert weight_dtype("bf16", cuda=False, bf16_supported=False) == "bf16"
    with pytest.raises(ConfigError, match=r"TrainConfig\.base_dtype must be one of"):
        core.TrainConfig(base_dtype="int8")
    with pytest.raises(ConfigError, match=r"TrainConfig\.quantization must be one of"):
        core.TrainConfig(quantization="gptq")


def test_bf16_base_weights_train_fp32_lora(base_model, small_split, tokenizer):
    fp32, _ = _train(base_model, small_split, tokenizer)
    bf16, lines = _train(base_model, small_split, tokenizer, base_dtype="bf16")
    assert any("trainable parameters (fp32) on bf16 base weights" in line for line in lines)
    dtypes = {(p.requires_grad, p.dtype) for p in bf16.model.parameters()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}  # frozen base in bf16, LoRA (and AdamW) in fp32
    assert bf16.losses == pytest.approx(fp32.losses, abs=0.05) and bf16.losses != fp32.losses


def test_qlora_on_a_machine_without_cuda_is_refused_before_loading(base_model, small_split, tokenizer):
    with pytest.raises(ConfigError, match=r"quantization 'nf4' \(QLoRA\) needs a CUDA GPU"):
        _train(base_model, small_split, tokenizer, quantization="nf4")
