from kfp_llmops.components.registry.register_model import core


def _lineage():
    return core.build_lineage(
        model_name="llm",
        base_model="org/base",
        dataset=core.ArtifactRef("gs://r/validated", {"sha256": "d" * 64, "rows": 2000.0, "source_sha256": "t" * 64,
                                                              "parents": {"dataset": "gs://in/train.jsonl"}}),
        adapter=core.ArtifactRef("gs://r/adapter", {"sha256": "a" * 64, "steps": 300.0, "train_loss_final": 0.09}),
        onnx_model=core.ArtifactRef("gs://r/onnx", {"sha256": "o" * 64, "opset": 18.0, "precision": "fp32",
                                                    "merged_weights_sha256": "m" * 64}),
        evaluation={"candidate.exact_match": 0.57, "base.exact_match": 0.0, "production.exact_match": 0.55,
                    "base.delta.exact_match": 0.57, "base.delta_ci_low.exact_match": 0.47, "base.delta_ci_high.exact_match": 0.67,
                    "production.delta.exact_match": 0.02, "production.delta_ci_low.exact_match": -0.03,
                    "production.delta_ci_high.exact_match": 0.07, "candidate.latency_p95_ms": 23.0,
                    "base.latency_p95_ms": 23.2, "base.ratio.latency_p95_ms": 0.991, "base.ratio_ci_low.latency_p95_ms": 0.95,
                    "base.ratio_ci_high.latency_p95_ms": 1.04, "examples": 100.0},
        gate_reasons=["exact_match ok: ...", "perplexity ok: ..."],
        source_commit="abc123",
        run_id="run-1",
        training_config={"r": 16, "learning_rate": 0.003},
    )


def test_lineage_holds_digests_parents_and_restores_integers():
    record = _lineage()
    assert record["artifacts"]["dataset"] == {"uri": "gs://r/validated", "sha256": "d" * 64, "rows": 2000,
                                              "source": "gs://in/train.jsonl", "source_sha256": "t" * 64}
    assert record["artifacts"]["onnx_model"]["sha256"] == "o" * 64
    assert record["training"]["steps"] == 300 and isinstance(record["training"]["steps"], int)
    assert record["evaluation"]["examples"] == 100 and record["export"]["opset"] == 18
    assert (record["base_model"], record["run_id"], record["source_commit"]) == ("org/base", "run-1", "abc123")
    assert record["artifacts"]["merged_weights"]["sha256"] == "m" * 64
    assert record["training"]["config"] == {"r": 16, "learning_rate": 0.003}


def test_model_card_has_every_section():
    card = core.model_card(_lineage())
    for heading in ("# Model card: llm", "## Intended use", "## Data", "## Training", "## Evaluation", "## Safety", "## Gate",
                    "## Serving artifact", "## Limits", "## Provenance"):
        assert heading in card
    table = card.split("## Evaluation")[1].split("## Safety")[0]
    assert "| metric | candidate | production | base | vs production (95% CI) | vs base (95% CI) |" in table
    assert "| exact_match | 0.5700 | 0.5500 | 0.0000 | +0.0200 [-0.0300, +0.0700] | +0.5700 [+0.4700, +0.6700] |" in table
    assert "| latency_p95_ms | 23.0000 |  | 23.2000 |  | x0.991 [0.950, 1.040] |" in table
    assert "ci_low" not in table  # no flat keys: one row per metric
    assert "(2000 rows, sha256 `" + "d" * 64 + "`)" in card


def test_register_is_idempotent_and_records_the_adapter(tmp_path):
    from kfp_llmops.registry import open_registry

    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    first = core.register(registry, _lineage())
    again = core.register(registry, _lineage())
    assert first == {"registry_uri": registry.uri, "registered_model": "llm", "version": "1", "created": True, "resource": "",
                     "adapter_model": "llm-adapter", "adapter_version": "1"}
    assert again == {**first, "created": False}
    version = registry.register("llm", "gs://r/onnx", "o" * 64, {})
    assert version.tags["base_model"] == "org/base" and version.tags["eval.candidate.exact_match"] == "0.57"
    assert version.tags["dataset_sha256"] == "d" * 64 and version.tags["source_commit"] == "abc123"
    assert version.tags["train_data_sha256"] == "t" * 64
    assert version.tags["merged_weights_sha256"] == "m" * 64


def test_model_card_has_safety_limits_and_registry():
    record = {**_lineage(), "registry": {"registered_model": "llm", "version": "3", "adapter_model": "llm-adapter",
                                         "adapter_version": "3", "registry_uri": "sqlite:///r.db"}}
    record["evaluation"]["candidate.attack_success_rate"] = 0.1
    card = core.model_card(record)
    assert "- candidate.attack_success_rate: 0.1000" in card.split("## Safety")[1].split("## Gate")[0]
    assert "| candidate.attack_success_rate |" not in card and "## Limits" in card
    assert "`llm` version 3 and `llm-adapter` version 3 in `sqlite:///r.db`" in card


def test_the_served_model_digest_is_the_registry_identity(tmp_path):
    from kfp_llmops.registry import open_registry

    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    first, second = _lineage(), _lineage()
    for record, measured in ((first, "1" * 64), (second, "2" * 64)):  # export.json timings differ between runs
        record["artifacts"]["onnx_model"].update(sha256=measured, model_sha256="s" * 64)
    assert core.register(registry, first)["version"] == core.register(registry, second)["version"] == "1"


def test_cost_of_training_evaluation_and_export_is_in_the_card_and_the_tags(tmp_path):
    from kfp_llmops.cost import CostConfig
    from kfp_llmops.registry import open_registry

    record = core.build_lineage(
        model_name="llm", base_model="org/base",
        dataset=core.ArtifactRef("gs://r/validated", {"sha256": "d" * 64, "rows": 10.0}),
        adapter=core.ArtifactRef("gs://r/adapter", {"sha256": "a" * 64, "step_seconds": 7200.0,
                                                    "accelerator": "NVIDIA_L4", "accelerator_count": 2.0}),
        onnx_model=core.ArtifactRef("gs://r/onnx", {"sha256": "o" * 64, "step_seconds": 360.0, "accelerator": "cpu"}),
        evaluation={"candidate.exact_match": 0.5, "step_seconds": 1800.0, "accelerator": "NVIDIA_L4",
                    "accelerator_count": 1.0},
        gate_reasons=[], source_commit="", run_id="r",
        cost_config=CostConfig.from_dict({"prices_per_hour": {"NVIDIA_L4": 0.5, "cpu": 0.1}}),
    )
    assert "step_seconds" not in record["evaluation"] and "accelerator" not in record["evaluation"]
    assert record["cost"]["accelerator_hours"] == {"NVIDIA_L4": 4.5, "cpu": 0.1}
    assert record["cost"]["total"] == 2.26  # 4 L4-hours training + 0.5 evaluating at 0.5, 0.1 cpu-hours at 0.1
    card = core.model_card(record)
    assert "## Cost (estimate)\n- training, evaluation and export: 2.2600 USD (NVIDIA_L4 4.5000 h, cpu 0.1000 h)" in card
    assert "- train-lora: 2.0000 USD" in card
    version = open_registry(f"sqlite:///{tmp_path / 'r.db'}").get_version("llm", core.register(
        open_registry(f"sqlite:///{tmp_path / 'r.db'}"), record)["version"])
    assert version.tags["cost.estimate"] == "2.260000" and version.tags["cost.currency"] == "USD"
    assert version.tags["cost.NVIDIA_L4_hours"] == "4.500000"
