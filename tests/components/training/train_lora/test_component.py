import json

import pytest
from html_check import check_html
from kfp.dsl import HTML, Dataset, Metrics, Model

from kfp_llmops.components.data.prepare_dataset.core import prepare
from kfp_llmops.tokenized import write_prepared
from kfp_llmops.components.training.train_lora.component import train_lora
from kfp_llmops.datasets import instruction_pairs, read_jsonl


@pytest.fixture(scope="module")
def prepared_dir(demo_assets, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    write_prepared(prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:40], tokenizer), out)
    return out


def test_writes_safetensors_adapter_with_lineage_and_metrics(prepared_dir, base_model, tmp_path):
    prepared = Dataset(uri=str(prepared_dir), metadata={"sha256": "abc"})
    adapter, metrics = Model(uri=str(tmp_path / "adapter")), Metrics(uri=str(tmp_path / "metrics"))
    train_lora.python_func(prepared=prepared, base_model=base_model, train_config={"max_steps": 2.0, "batch_size": 4},
                           adapter=adapter, metrics=metrics, loss_curve=HTML(uri=str(tmp_path / "curve")))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    meta = adapter.metadata
    assert meta["base_model"] == base_model and meta["dataset_sha256"] == "abc"
    assert meta["parents"] == {"prepared": prepared.uri} and len(meta["sha256"]) == 64
    assert metrics.metadata["steps"] == 2 and metrics.metadata["trainable_parameters"] == 155648
    curve = (tmp_path / "curve").read_text()
    check_html(curve, plots=1)  # well-formed, with the plot
    assert "2 steps" in curve and "learning rate" in curve and "validation loss" in curve
    history = json.loads((tmp_path / "adapter" / "history.json").read_text())
    assert len(history["loss"]) == len(history["learning_rate"]) == 2 and history["learning_rate"][0] > 0


def test_bad_config_exits_with_the_field_and_writes_nothing(prepared_dir, base_model, tmp_path, capsys):
    adapter = Model(uri=str(tmp_path / "adapter"))
    with pytest.raises(SystemExit):
        train_lora.python_func(prepared=Dataset(uri=str(prepared_dir)), base_model=base_model, train_config={"r": 0},
                               adapter=adapter, metrics=Metrics(uri=str(tmp_path / "m")), loss_curve=HTML(uri=str(tmp_path / "curve")))
    assert "ERROR: TrainConfig.r must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "adapter").exists()
