"""Run comparison: configs that differ, metrics with their intervals, overlaid loss curves, gate decisions."""

import json

import pytest
from html_check import check_html

from kfp_llmops import compare
from kfp_llmops.errors import UserInputError


def _run(name, seed, em, passed):
    return compare.RunRecord(
        name, {"r": 16, "seed": seed, "learning_rate": 3e-3},
        {"candidate.exact_match": em, "base.delta.exact_match": em, "base.delta_ci_low.exact_match": em - 0.1,
         "base.delta_ci_high.exact_match": em + 0.1, "validation_loss": 1.0 - em},
        {"loss": [2.0, 1.5, 1.0 - em]}, {"passed": passed, "reasons": [f"exact_match {em}"]})


def test_only_differing_config_fields_and_each_metric_with_its_interval():
    runs = [_run("a", 0, 0.35, True), _run("b", 7, 0.32, False)]
    assert compare.config_diff(runs) == {"seed": [0, 7]}
    table = compare.compare_markdown(runs)
    assert "| exact_match | 0.3500 (vs base +0.3500 [+0.2500, +0.4500]) | 0.3200 (vs base +0.3200 [+0.2200, +0.4200]) |" in table
    assert "| config.seed | 0 | 7 |" in table and "config.r" not in table and "| gate | PROMOTE | BLOCKED |" in table
    page = compare.compare_html(runs)
    [svg] = check_html(page, plots=1)
    assert "Training loss by run" in page and "exact_match 0.32" in page


def test_an_adapter_folder_is_a_run(tmp_path):
    (tmp_path / "training_config.json").write_text(json.dumps({"r": 8}), encoding="utf-8")
    (tmp_path / "history.json").write_text(json.dumps({"loss": [1.0, 0.5], "learning_rate": [], "validation": []}))
    record = compare.from_adapter(tmp_path, {"validation_loss": 0.6, "steps": 2.0})
    assert record.config == {"r": 8} and record.metrics == {"validation_loss": 0.6, "steps": 2.0}
    assert record.history["loss"] == [1.0, 0.5]


def test_what_is_not_a_run_is_named(tmp_path):
    with pytest.raises(UserInputError, match="not a kfp.local run folder"):
        compare.from_run_dir(tmp_path)
    with pytest.raises(UserInputError, match="nothing to compare"):
        compare.compare_html([])
