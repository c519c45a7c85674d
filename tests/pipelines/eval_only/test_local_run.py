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


def test_eval_only_gates_on_slices_an_lm_eval_task_and_a_judge(demo_assets, base_model, tmp_path):
    """The run the fairness, harness and judge rules were built for, on kfp.local: eval records with a slice field,
    the lm-eval task folder shipped with the tests, a scripted judge on localhost. Every rule reads its figures; the
    judge's, set above what a tie gives, blocks the candidate and says why."""
    import json
    from pathlib import Path

    from html_check import check_html
    from recording_server import RecordingServer

    adapter = tmp_path / "adapter"
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(adapter)
    records = [json.loads(line) for line in (demo_assets / "eval.jsonl").read_text().splitlines()[:10]]
    eval_data = tmp_path / "eval.jsonl"
    eval_data.write_text("".join(json.dumps({**r, "tier": "gold" if k % 2 else "free"}) + "\n" for k, r in enumerate(records)))
    tasks = Path(__file__).resolve().parents[2] / "data" / "lm_eval_tasks"
    verdict = {"choices": [{"message": {"role": "assistant", "content": "tie"}}]}
    with RecordingServer(lambda req: (200, verdict)) as judge:
        arguments = {
            "base_model": base_model, "adapter_uri": str(adapter), "eval_data": str(eval_data),
            "registry_uri": f"sqlite:///{tmp_path / 'registry.db'}",
            "eval_config": {"latency_requests": 4, "latency_tokens": 4, "bootstrap_resamples": 100, "safety": False,
                            "slices": ["tier"], "judge": {"url": judge.url + "/v1", "model": "scripted", "max_examples": 5},
                            "harness": {"tasks": ["reversal_mc"], "task_dir": str(tasks), "limit": 12}},
            "gate_config": {"improve_over": [], "max_primary_drop": 0.0, "max_p95_latency_increase": 10.0,
                            "max_slice_gap": 1.0, "max_slice_drop": 0.0, "max_harness_drop": 0.0, "min_win_rate": 0.6}}
        summary = run_local(build("eval-only", "vertex"), arguments, tmp_path / "runs")
    assert summary.succeeded, summary.text()
    assert len(judge.requests) == 10  # 5 pairs, both orders
    decision = summary.artifacts("regression-gate", "decision")[0]["metadata"]
    assert decision["passed"] is False
    blocking = [r for r in decision["reasons"] if "the judge prefers the baseline too often" in r]
    assert blocking == ["vs base: judge scripted: candidate wins 0, ties 5, loses 0 of 5 (win rate 0.5000, ties count "
                        "half, 95% CI [0.5000, 0.5000]; allowed >= 0.6000): the judge prefers the baseline too often"]
    assert any(r.startswith("fairness, slice tier=") for r in decision["reasons"])
    assert any(r.startswith("vs base: lm-eval reversal_mc/acc") for r in decision["reasons"])
    metrics = summary.artifacts("evaluate-model", "metrics")[0]["metadata"]
    assert metrics["base.judge.win_rate"] == 0.5 and "candidate.harness.reversal_mc.acc" in metrics
    assert "candidate.slice.tier=gold.exact_match" in metrics
    page = Path(summary.artifacts("evaluate-model", "report")[0]["uri"]).read_text()
    check_html(page, plots=2)
    assert "<h2>lm-evaluation-harness</h2>" in page and "<h2>Pairwise judge: candidate vs base</h2>" in page
