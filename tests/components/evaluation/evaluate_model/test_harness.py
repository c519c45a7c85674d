"""lm-evaluation-harness tasks from the task folder shipped with the tests (tests/data/lm_eval_tasks: a multiple-choice
reversal task in lm-eval's own YAML format): our backend gives what lm-eval's own CLI gives on the same model and task;
a missing task or folder is named; inside the evaluation, every model runs the tasks and the gate reads them; and a
run with slices, an lm-eval task and a pairwise judge gates on all three."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from html_check import check_html
from recording_server import RecordingServer

from kfp_llmops.components.evaluation.evaluate_model import core, harness
from kfp_llmops.components.evaluation.evaluate_model.report import render_html
from kfp_llmops.components.evaluation.regression_gate.core import GateConfig, decide
from kfp_llmops.configs import HarnessConfig
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import load_causal_lm

TASKS = Path(__file__).resolve().parents[3] / "data" / "lm_eval_tasks"
CFG = HarnessConfig(tasks=("reversal_mc",), task_dir=str(TASKS), batch_size=8)


def test_our_scores_equal_lm_evals_own_cli_on_the_same_model_and_task(base_model, tokenizer, tmp_path):
    ours = harness.run_tasks(load_causal_lm(base_model), tokenizer, CFG)["reversal_mc"]
    subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={base_model},dtype=float32",
                    "--tasks", "reversal_mc", "--include_path", str(TASKS), "--device", "cpu", "--batch_size", "8",
                    "--output_path", str(tmp_path)], cwd=TASKS, check=True, capture_output=True)
    [result] = tmp_path.rglob("results_*.json")
    theirs = json.loads(result.read_text())["results"]["reversal_mc"]
    assert ours["samples"] == 24
    for metric in ("acc", "acc_norm"):
        assert ours[metric] == theirs[f"{metric},none"] and ours[f"{metric}_stderr"] == theirs[f"{metric}_stderr,none"]


def test_a_missing_task_or_folder_is_named(tmp_path):
    with pytest.raises(UserInputError, match=r"HarnessConfig.tasks \['hellaswag'\]: not in .*lm_eval_tasks \(it has \['reversal_mc'\]\)"):
        harness.task_manager(HarnessConfig(tasks=("hellaswag",), task_dir=str(TASKS)))
    with pytest.raises(UserInputError, match="task_dir .*nowhere: no such folder"):
        harness.task_manager(HarnessConfig(tasks=("reversal_mc",), task_dir=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="HarnessConfig.task_dir"):
        HarnessConfig(tasks=("reversal_mc",))
    assert HarnessConfig(tasks=["t"], task_dir="d", limit=5.0).limit == 5  # kfp.local's floats


def test_deltas_take_their_interval_from_the_standard_errors():
    got = harness.compare_tasks({"t": {"samples": 10, "acc": 0.7, "acc_stderr": 0.03}},
                                {"t": {"samples": 10, "acc": 0.6, "acc_stderr": 0.04}})
    assert got["t/acc"]["delta"] == pytest.approx(0.1)
    assert got["t/acc"]["ci_low"] == pytest.approx(0.1 - 1.959964 * 0.05)


@pytest.fixture(scope="module")
def untrained_adapter(base_model, tmp_path_factory):
    """A LoRA adapter straight after initialisation: B is zero, so it answers exactly as its base."""
    from kfp_llmops.components.training.train_lora.core import attach_lora
    from kfp_llmops.configs import TrainConfig

    out = tmp_path_factory.mktemp("adapter")
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(out)
    return str(out)


def chat(text):
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def test_a_run_with_slices_an_lm_eval_task_and_a_judge_gates_on_all_three(base_model, tokenizer, demo_assets,
                                                                          untrained_adapter, tmp_path):
    """Candidate: the base with an untrained adapter (the same answers); production: the base. Every figure ties, so
    each rule passes at a threshold that allows a tie and blocks at one that demands more, naming what it read."""
    from kfp_llmops.adapters import load_adapted

    records = [json.loads(line) for line in (demo_assets / "eval.jsonl").read_text().splitlines()[:8]]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({**r, "tier": "gold" if k % 2 else "free"}) + "\n" for k, r in enumerate(records)))
    with RecordingServer(lambda req: (200, chat("tie"))) as judge:
        cfg = core.EvalConfig.from_dict({
            "latency_requests": 2, "latency_tokens": 2, "bootstrap_resamples": 50, "safety": False, "slices": ["tier"],
            "judge": {"url": judge.url, "model": "scripted", "max_examples": 4},
            "harness": {"tasks": ["reversal_mc"], "task_dir": str(TASKS), "limit": 12}})
        pairs, labels = core.read_eval_set(str(path), cfg)
        report = core.evaluate_all(load_adapted(base_model, untrained_adapter, merge=True),
                                   {"production": load_causal_lm(base_model)}, tokenizer, pairs, cfg, slices=labels)
    comp = report["comparisons"]["production"]
    assert comp["harness"]["reversal_mc/acc"]["delta"] == 0.0 and report["models"]["candidate"]["harness"]["reversal_mc"]["samples"] == 12
    assert comp["judge"]["win_rate"] == 0.5 and set(comp["slices"]["tier"]) == {"gold", "free"}
    rules = {"improve_over": [], "max_primary_drop": 0.0, "max_p95_latency_increase": 10.0, "max_slice_gap": 1.0,
             "max_slice_drop": 0.0, "max_harness_drop": 0.0, "min_win_rate": 0.5}
    passed = decide(report["comparisons"], GateConfig.from_dict(rules))
    assert passed.passed, passed.reasons
    assert {c.metric for c in passed.checks} >= {"slice:tier", "harness", "judge_win_rate"}
    blocked = decide(report["comparisons"], GateConfig.from_dict({**rules, "min_win_rate": 0.6}))
    assert [c.metric for c in blocked.blocking] == ["judge_win_rate"]
    flat = core.flat_metrics(report)
    assert flat["candidate.harness.reversal_mc.acc"] == flat["production.harness.reversal_mc.acc"]
    assert flat["production.harness_delta.reversal_mc.acc"] == 0.0
    page = render_html(report, passed)
    check_html(page, plots=2)
    for section in ("<h2>lm-evaluation-harness</h2>", "<h2>Pairwise judge: candidate vs production</h2>", "<h2>Slices</h2>"):
        assert section in page
