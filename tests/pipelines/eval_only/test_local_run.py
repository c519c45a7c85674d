"""eval-only on kfp.local: an untrained adapter is evaluated against its base and, with no improvement, blocked."""

from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.local_run import run_local
from kfp_llmops.modeling import load_causal_lm
from kfp_llmops.pipelines.registry import build


def test_eval_only_evaluates_and_gates_without_training(demo_assets, base_model, tmp_path):
    adapter = tmp_path / "adapter"
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(adapter)
    arguments = {"base_model": base_model, "adapter_uri": str(adapter), "eval_data": str(demo_assets / "eval.jsonl"),
                 "eval_config": {"latency_requests": 8, "latency_tokens": 8},
                 "registry_uri": f"sqlite:///{tmp_path / 'registry.db'}"}
    summary = run_local(build("eval-only", "vertex"), arguments, tmp_path / "runs")
    assert summary.succeeded, summary.text()
    assert [s.name for s in summary.steps if not s.name.startswith("importer")] == ["check-configs", "resolve-production", "evaluate-model",
                                                                                      "regression-gate"]
    decision = summary.artifacts("regression-gate", "decision")[0]["metadata"]
    assert decision["passed"] is False
    assert any("no confident improvement" in r for r in decision["reasons"])
