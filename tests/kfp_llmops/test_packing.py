"""Sequence packing with per-document isolation: same logits per document, same loss, fewer padded slots."""

import torch

from kfp_llmops.examples import Example
from kfp_llmops.modeling import collate, collate_packed, load_causal_lm, pack


def _examples():
    lengths = [5, 9, 3, 12, 7, 4]
    return [Example(list(range(10, 10 + n)), [-100] * 2 + list(range(12, 10 + n))) for n in lengths]


def test_rows_are_balanced_to_the_fewest_slots():
    rows = pack(_examples(), 16)
    # plain first-fit decreasing at 16 gives [[12, 4], [9, 7], [5, 3]]: 3 rows x 16 = 48 slots; balanced rows of 14: 42
    assert [[len(e.input_ids) for e in r] for r in rows] == [[12], [9, 5], [7, 4, 3]]
    assert len(pack([Example([1] * 40, [-100] * 40)], 16)) == 1  # too long for a row: a row of its own


def test_each_document_sees_only_itself(base_model):
    model = load_causal_lm(base_model).eval()
    a, b = Example([5, 9, 23, 40, 7], [-100] * 5), Example([11, 30, 8, 61], [-100] * 4)
    batch = collate_packed([[a, b]], pad_id=0)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]] and "attention_mask" not in batch
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
        alone = model(input_ids=torch.tensor([b.input_ids])).logits
    assert float((packed[:, 5:] - alone).abs().max()) < 1e-4


def test_loss_equals_the_padded_batch_and_slots_shrink(base_model, demo_assets, tokenizer):
    from kfp_llmops.components.data.prepare_dataset.core import prepare
    from kfp_llmops.datasets import instruction_pairs, read_jsonl

    examples = prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer).train[:32]
    model = load_causal_lm(base_model).eval()
    padded, packed = collate(examples, tokenizer.pad_token_id), collate_packed(pack(examples, 128), tokenizer.pad_token_id)
    with torch.no_grad():
        assert float(model(**padded).loss) == pytest_approx(float(model(**packed, use_cache=False).loss))
    real = sum(len(e.input_ids) for e in examples)
    assert real / packed["input_ids"].numel() > 0.85 > real / padded["input_ids"].numel()


def pytest_approx(value):
    import pytest

    return pytest.approx(value, abs=1e-5)


def test_an_attention_cost_packs_narrower_rows():
    lengths = [30, 28, 25, 22, 20, 18, 15, 12, 10, 8]  # 188 tokens
    examples = [Example([7] * n, [-100] * n) for n in lengths]

    def shape(rows):
        return len(rows), max(sum(len(e.input_ids) for e in r) for r in rows)

    assert shape(pack(examples, 128)) == (2, 95)  # the fewest slots: 190
    # attention over the row as costly as the slot's matrix products at width 64: 6 rows of 33 (198 slots, cost
    # 198 x 1.52) beat 2 rows of 95 (190 x 2.48); no row narrower than the longest example
    assert shape(pack(examples, 128, attention_width=64)) == (6, 33)
    assert sorted(len(e.input_ids) for r in pack(examples, 128, attention_width=64) for e in r) == sorted(lengths)
    assert pack(examples, 128, attention_width=64) == pack(examples, 128, attention_width=64)  # deterministic


def test_attention_width_from_the_models_shape():
    from transformers import LlamaConfig, LlamaForCausalLM

    from kfp_llmops.modeling import attention_width

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(vocab_size=320, hidden_size=320, intermediate_size=864, num_hidden_layers=2,
                                             num_attention_heads=8, num_key_value_heads=4))
    # one decoder layer: q, o 320 x 320, k, v 320 x 160, the MLP 3 x 320 x 864, two norms of 320
    assert attention_width(model) == (2 * 320 * 320 + 2 * 320 * 160 + 3 * 320 * 864 + 2 * 320) / (3 * 8 * 40)
    assert attention_width(torch.nn.Linear(2, 2)) == 0.0  # no config: the fewest slots
