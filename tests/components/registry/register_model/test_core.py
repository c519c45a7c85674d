from kfp_llmops.components.registry.register_model import core


def _lineage():
    return core.build_lineage(
        model_name="llm",
        base_model="org/base",
        dataset=core.ArtifactRef("gs://r/validated", {"sha256": "d" * 64, "rows": 2000.0, "parents": {"dataset": "gs://in/train.jsonl"}}),
        adapter=core.ArtifactRef("gs://r/adapter", {"sha256": "a" * 64, "steps": 300.0, "train_loss_final": 0.09}),
        onnx_model=core.ArtifactRef("gs://r/onnx", {"sha256": "o" * 64, "opset": 18.0, "precision": "fp32"}),
        evaluation={"candidate_exact_match": 0.57, "baseline_exact_match": 0.0, "examples": 100.0},
        gate_reasons=["exact_match ok: ...", "perplexity ok: ..."],
        source_commit="abc123",
        run_id="run-1",
    )


def test_lineage_holds_digests_parents_and_restores_integers():
    record = _lineage()
    assert record["artifacts"]["dataset"] == {"uri": "gs://r/validated", "sha256": "d" * 64, "rows": 2000, "source": "gs://in/train.jsonl"}
    assert record["artifacts"]["onnx_model"]["sha256"] == "o" * 64
    assert record["training"]["steps"] == 300 and isinstance(record["training"]["steps"], int)
    assert record["evaluation"]["examples"] == 100 and record["export"]["opset"] == 18
    assert (record["base_model"], record["run_id"], record["source_commit"]) == ("org/base", "run-1", "abc123")


def test_model_card_has_every_section():
    card = core.model_card(_lineage())
    for heading in ("# Model card: llm", "## Intended use", "## Data", "## Training", "## Evaluation", "## Gate", "## Serving artifact", "## Provenance"):
        assert heading in card
    assert "| candidate_exact_match | 0.5700 |" in card
    assert "(2000 rows, sha256 `" + "d" * 64 + "`)" in card
