"""Packed rows are exact for every architecture we train (the loss of the padded batch, sliding windows and eager
attention included), attention per packed document computes what the model's own packed mask computes (same loss and
gradients; what it cannot compute exactly falls back to transformers' sdpa), and the model's attention setting is back
as it was after the block."""

import pytest
import torch
from tiny_architectures import SHAPES, tiny_config
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from kfp_llmops.examples import Example
from kfp_llmops.configs import TrainConfig
from kfp_llmops.modeling import collate, collate_packed, pack
from kfp_llmops.training import Trainer
from kfp_llmops.packed_attention import NAME, packed_attention

EAGER = {"gemma2"}  # transformers has no sdpa for it: the mask path stays


def examples(lengths, vocab=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        out.append(Example(input_ids=ids, labels=[-100] * (n // 3) + ids[n // 3:]))
    return out


def loss_and_grads(model, batch, per_document: bool):
    model.zero_grad(set_to_none=True)
    with packed_attention(model, enabled=per_document) as active:
        loss = model(**batch, use_cache=False).loss
        loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return active, float(loss.detach()), grads


@pytest.mark.parametrize("model_type", sorted(SHAPES))
def test_same_loss_and_gradients_as_the_mask(model_type):
    torch.manual_seed(0)
    config = tiny_config(model_type, 64, pad_token_id=0)
    model = AutoModelForCausalLM.from_config(config).eval()  # sdpa, or eager where transformers has none; no dropout
    attention = model.config._attn_implementation
    docs = examples([23, 17, 9, 30, 5, 12, 26])  # documents longer than the 8-token windows
    rows = pack(docs, 40)
    masked = collate_packed(rows, pad_id=0)
    spans = collate_packed(rows, pad_id=0, spans=True)
    with torch.no_grad():
        padded = float(model(**collate(docs, pad_id=0)).loss)
    _, mask_loss, mask_grads = loss_and_grads(model, masked, per_document=False)
    active, doc_loss, doc_grads = loss_and_grads(model, spans, per_document=True)
    assert active == (model_type not in EAGER)
    assert mask_loss == pytest.approx(padded, abs=1e-6)
    assert doc_loss == pytest.approx(mask_loss, abs=1e-6)
    assert doc_grads.keys() == mask_grads.keys()
    for name, grad in doc_grads.items():
        torch.testing.assert_close(grad, mask_grads[name], atol=1e-6, rtol=1e-4, msg=name)
    assert model.config._attn_implementation == attention


def test_spans_cover_each_document_and_each_rows_padded_tail():
    batch = collate_packed([examples([3, 2]), examples([4]), examples([5])], pad_id=0, spans=True)
    assert batch["input_ids"].shape == (3, 5) and batch["cu_seq_lens_q"].tolist() == [0, 3, 5, 9, 10, 15]
    rows = [examples([3, 2]), examples([4])]
    batch = collate_packed(rows, pad_id=0, spans=True)
    assert batch["input_ids"].shape == (2, 5) and batch["cu_seq_lens_q"].tolist() == [0, 3, 5, 9, 10]
    assert batch["cu_seq_lens_k"].tolist() == [0, 3, 5, 9, 10]


def tiny_llama(attn_implementation="sdpa"):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        attn_implementation=attn_implementation))


def test_the_setting_is_restored_and_other_attention_is_left_alone():
    model = tiny_llama()
    with pytest.raises(RuntimeError), packed_attention(model) as active:
        assert active and model.config._attn_implementation == NAME
        raise RuntimeError("training failed")
    assert model.config._attn_implementation == "sdpa"
    eager = tiny_llama("eager")
    with packed_attention(eager) as active:
        assert not active and eager.config._attn_implementation == "eager"
    with packed_attention(model, enabled=False) as active:
        assert not active and model.config._attn_implementation == "sdpa"


def test_without_spans_or_with_a_kv_cache_it_is_plain_sdpa():
    model = tiny_llama().eval()
    ids = torch.randint(3, 64, (2, 9))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        greedy = model.generate(ids, max_new_tokens=4, do_sample=False)
        with packed_attention(model):
            torch.testing.assert_close(model(input_ids=ids).logits, expected)
            assert torch.equal(model.generate(ids, max_new_tokens=4, do_sample=False), greedy)


def test_training_packs_the_fewest_slots_and_matches_the_masked_run():
    data = examples([23, 17, 9, 30, 5, 12, 26, 8, 19, 14, 3, 28], seed=1)
    cfg = TrainConfig(max_steps=3, batch_size=6, learning_rate=1e-2, warmup_steps=0, pack_length=64)

    def train(model, pack_attention_width, log=lambda _: None):
        return Trainer(model, cfg, pad_id=0, pack_attention_width=pack_attention_width, log=log).setup(data).train()

    lines = []
    run = train(tiny_llama(), None, lines.append)
    assert any("attention per document" in line for line in lines)
    fewest = train(tiny_llama(), 0.0)  # the fewest slots, chosen explicitly: the same rows, the same losses
    assert run.losses == fewest.losses and run.token_slots == fewest.token_slots
    masked = train(tiny_llama("eager"), 0.0)  # eager attention: the mask path
    assert run.losses == pytest.approx(masked.losses, abs=1e-5)
