"""Sequence packing with per-document isolation: same logits per document, same loss, fewer padded slots."""

import torch

from kfp_llmops.modeling import Example, collate, collate_packed, load_causal_lm, pack


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
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]]
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        alone = model(input_ids=torch.tensor([b.input_ids])).logits
    assert float((packed[:, 5:] - alone).abs().max()) < 1e-4


def test_loss_equals_the_padded_batch_and_slots_shrink(base_model, demo_assets, tokenizer):
    from kfp_llmops.components.data.prepare_dataset.core import prepare
    from kfp_llmops.datasets import instruction_pairs, read_jsonl

    examples = prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer).train[:32]
    model = load_causal_lm(base_model).eval()
    padded, packed = collate(examples, tokenizer.pad_token_id), collate_packed(pack(examples, 128), tokenizer.pad_token_id)
    with torch.no_grad():
        assert float(model(**padded).loss) == pytest_approx(float(model(**packed).loss))
    real = sum(len(e.input_ids) for e in examples)
    assert real / packed["input_ids"].numel() > 0.85 > real / padded["input_ids"].numel()


def pytest_approx(value):
    import pytest

    return pytest.approx(value, abs=1e-5)
