"""`kfp-llmops evaluate`: exit 0 promote, 1 blocked, 2 bad input."""

import json

import pytest

from kfp_llmops.cli import main
from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.modeling import load_causal_lm

FAST = '{"latency_requests": 4, "latency_tokens": 4, "bootstrap_resamples": 200}'


@pytest.fixture(scope="module")
def adapter(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter")
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(out)
    return out


def test_no_improvement_is_blocked_with_exit_1_and_writes_reports(base_model, adapter, demo_assets, tmp_path, capsys, write_jsonl, read_jsonl):
    eval_data = write_jsonl(tmp_path / "e.jsonl", read_jsonl(demo_assets / "eval.jsonl")[:8])
    code = main(["evaluate", "--base-model", base_model, "--adapter", str(adapter), "--eval-data", str(eval_data),
                 "--baseline", f"production={base_model}", "--eval-config", FAST, "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1
    assert "# Gate: BLOCKED" in out and "[production] exact_match" in out
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.json", "examples.jsonl", "report.html", "metrics.json"}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["production.delta.exact_match"] == 0.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--baseline", "production=/no/such/model"], "baseline model '/no/such/model': no such path"),
        (["--gate-config", '{"max_toxicity": 0.1}'], "GateConfig: unknown field(s) ['max_toxicity']"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(base_model, adapter, demo_assets, capsys, extra, message):
    code = main(["evaluate", "--base-model", base_model, "--adapter", str(adapter),
                 "--eval-data", str(demo_assets / "eval.jsonl"), *extra])
    assert code == 2 and message in capsys.readouterr().err


def test_an_empty_eval_set_exits_2(base_model, adapter, tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    code = main(["evaluate", "--base-model", base_model, "--adapter", str(adapter), "--eval-data", str(tmp_path / "empty.jsonl")])
    assert code == 2 and "the file has no records" in capsys.readouterr().err
