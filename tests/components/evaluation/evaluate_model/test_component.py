import json

import re

import pytest
from html_check import check_html
from kfp.dsl import HTML, Dataset, Metrics, Model

from kfp_llmops.components.evaluation.evaluate_model.component import evaluate_model
from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.modeling import load_causal_lm

SMALL = {"latency_requests": 4.0, "latency_tokens": 4, "bootstrap_resamples": 200, "golden_prompts": 3}


@pytest.fixture(scope="module")
def adapter_dir(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter")
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(out)
    return out


def _outputs(tmp_path):
    return dict(metrics=Metrics(uri=str(tmp_path / "metrics")), report=HTML(uri=str(tmp_path / "report")),
                results=Dataset(uri=str(tmp_path / "results")))


def test_writes_metrics_report_and_per_example_results(base_model, adapter_dir, tmp_path, write_jsonl, read_jsonl, demo_assets):
    eval_ds = Dataset(uri=str(write_jsonl(tmp_path / "eval.jsonl", read_jsonl(demo_assets / "eval.jsonl")[:8])))
    outs = _outputs(tmp_path)
    evaluate_model.python_func(base_model=base_model, adapter=Model(uri=str(adapter_dir)), eval_dataset=eval_ds,
                               baseline_models={"production": {"base_model": base_model, "adapter": str(adapter_dir)}},
                               eval_config=SMALL, **outs)
    m = outs["metrics"].metadata
    assert {"candidate.exact_match", "base.exact_match", "production.exact_match", "production.delta_ci_low.exact_match",
            "candidate.latency_p95_ms", "candidate.attack_success_rate", "candidate.cost_per_1k_tokens"} <= set(m)
    report = json.loads((tmp_path / "results" / "report.json").read_text())
    assert set(report["comparisons"]) == {"base", "production"}
    rows = (tmp_path / "results" / "examples.jsonl").read_text().splitlines()
    assert len(rows) == 3 * 8 and json.loads(rows[0])["model"] == "candidate"
    # the production baseline is the same adapter on the same base: identical answers, deltas of exactly zero
    assert m["production.delta.exact_match"] == 0 and m["production.delta.bleu"] == 0
    html = (tmp_path / "report").read_text()
    check_html(html, plots=1)  # well-formed, with the metric-delta chart
    assert "Candidate vs production" in html and "Changed golden answers" in html
    # one definition per name: the report's corpus BLEU is the metric and the model card's figure
    from kfp_llmops.components.registry.register_model.core import evaluation_table

    row = re.search(r"<td>bleu \(corpus BLEU\)</td><td class=\"num\">([0-9.]+)</td><td class=\"num\">([0-9.]+)</td>", html)
    assert row and float(row.group(1)) == round(m["candidate.bleu"], 4) and float(row.group(2)) == round(m["base.bleu"], 4)
    card_row = next(r for r in evaluation_table(m) if r.startswith("| bleu |"))
    assert card_row.split(" | ")[1] == row.group(1)
    assert m["candidate.bleu"] != m["candidate.sentence_bleu"]  # two definitions, two names
    assert outs["results"].metadata["examples"] == 8 and len(outs["results"].metadata["sha256"]) == 64


def test_a_missing_baseline_fails_early_and_writes_nothing(base_model, adapter_dir, tmp_path, demo_assets, capsys):
    with pytest.raises(SystemExit):
        evaluate_model.python_func(base_model=base_model, adapter=Model(uri=str(adapter_dir)),
                                   eval_dataset=Dataset(uri=str(demo_assets / "eval.jsonl")),
                                   baseline_models={"production": str(tmp_path / "nope")}, **_outputs(tmp_path))
    assert "baseline model" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_a_judge_that_is_down_fails_the_step_with_the_reason_and_writes_nothing(base_model, adapter_dir, tmp_path,
                                                                                write_jsonl, read_jsonl, demo_assets, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the block ends
    eval_ds = Dataset(uri=str(write_jsonl(tmp_path / "eval.jsonl", read_jsonl(demo_assets / "eval.jsonl")[:4])))
    with pytest.raises(SystemExit):
        evaluate_model.python_func(base_model=base_model, adapter=Model(uri=str(adapter_dir)), eval_dataset=eval_ds,
                                   eval_config={**SMALL, "safety": False,
                                                "judge": {"url": f"http://127.0.0.1:{port}/v1", "model": "judge"}},
                                   **_outputs(tmp_path))
    err = capsys.readouterr().err
    assert f"the judge at http://127.0.0.1:{port}/v1/chat/completions did not answer" in err
    assert "rather than pass without a judgment" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "report").exists()
