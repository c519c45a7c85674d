"""The fused LoRA forward computes what peft computes: same outputs, loss and gradients, and peft's own forward
wherever the fused one would not be exact."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.lora_forward import eligible, fused_lora


def lora_model(**cfg):
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    model = attach_lora(base, TrainConfig(r=4, alpha=8, **cfg))
    with torch.no_grad():  # peft starts B at zero: give the adapters something to add
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model


def loss_and_grads(model, ids, fused: bool):
    model.zero_grad(set_to_none=True)
    with fused_lora(model, enabled=fused) as count:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return count, loss.detach(), grads


def test_same_loss_and_gradients_as_peft():
    model = lora_model()
    ids = torch.randint(0, 64, (3, 17))
    count, fused_loss, fused_grads = loss_and_grads(model, ids, fused=True)
    none, peft_loss, peft_grads = loss_and_grads(model, ids, fused=False)
    assert count == 14 and none == 0  # 7 linear layers in each of the 2 decoder layers
    assert float(fused_loss) == pytest.approx(float(peft_loss), abs=1e-6)
    assert fused_grads.keys() == peft_grads.keys()
    for name, grad in fused_grads.items():
        torch.testing.assert_close(grad, peft_grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_the_layers_get_their_own_forward_back():
    model = lora_model()
    with fused_lora(model) as count:
        assert sum("forward" in m.__dict__ for m in model.modules()) == count
    assert not any("forward" in m.__dict__ for m in model.modules())
    with pytest.raises(RuntimeError), fused_lora(model):
        raise RuntimeError("training failed")
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_bf16_autocast_matches_peft_under_autocast():
    model = lora_model()
    ids = torch.randint(0, 64, (2, 9))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, fused_loss, _ = loss_and_grads(model, ids, fused=True)
        _, peft_loss, _ = loss_and_grads(model, ids, fused=False)
    assert float(fused_loss) == pytest.approx(float(peft_loss), abs=2e-2)  # bf16 rounding, in a different order


def test_dropout_and_dora_keep_pefts_forward():
    assert not any(eligible(m) for m in lora_model(dropout=0.1).modules())
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=2))
    from peft import LoraConfig, get_peft_model

    dora = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", use_dora=True))
    with fused_lora(dora) as count:
        assert count == 0


def test_a_disabled_adapter_at_call_time_runs_the_base_model_only():
    model = lora_model()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        with model.disable_adapter():
            base_logits = model(input_ids=ids).logits
        reference = copy.deepcopy(model)
        with fused_lora(model):
            with model.disable_adapter():
                disabled = model(input_ids=ids).logits
            enabled = model(input_ids=ids).logits
        expected = reference(input_ids=ids).logits
    torch.testing.assert_close(disabled, base_logits)
    torch.testing.assert_close(enabled, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(enabled, base_logits)
