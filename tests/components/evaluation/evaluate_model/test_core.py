import math

import pytest

from kfp_llmops.components.evaluation.evaluate_model import core
from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.errors import UserInputError
from kfp_llmops.modeling import load_causal_lm


@pytest.fixture(scope="module")
def pairs(demo_assets):
    return instruction_pairs(read_jsonl(demo_assets / "eval.jsonl"))[:16]


@pytest.fixture(scope="module")
def untrained_adapter(base_model, tmp_path_factory):
    """A LoRA adapter straight after initialisation: B is zero, so it must not change any answer."""
    out = tmp_path_factory.mktemp("adapter")
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(out)
    return str(out)


def test_base_model_scores(base_model, tokenizer, pairs):
    scores = core.evaluate(load_causal_lm(base_model), tokenizer, pairs)
    assert scores["examples"] == 16 and len(scores["answers"]) == 16
    assert scores["exact_match"] == 0.0  # the base model was never shown reversal
    assert 1.0 < scores["perplexity"] < 50.0 and math.isfinite(scores["perplexity"])


def test_an_untrained_adapter_scores_exactly_like_its_base(base_model, tokenizer, pairs, untrained_adapter):
    base = core.evaluate(load_causal_lm(base_model), tokenizer, pairs)
    cand = core.evaluate(core.load_candidate(base_model, untrained_adapter), tokenizer, pairs)
    assert cand["answers"] == base["answers"]
    assert cand["perplexity"] == pytest.approx(base["perplexity"], rel=1e-6)
    scores = core.compare(cand, base)
    assert scores["delta_exact_match"] == 0.0 and abs(scores["delta_perplexity"]) < 1e-4
    report = core.report_markdown(scores, pairs, cand, base)
    assert "| exact_match | 0.0000 | 0.0000 | +0.0000 |" in report


def test_empty_eval_set_is_an_error(base_model, tokenizer):
    with pytest.raises(UserInputError, match="evaluation set is empty"):
        core.evaluate(load_causal_lm(base_model), tokenizer, [])
