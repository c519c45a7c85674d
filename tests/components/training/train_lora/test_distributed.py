"""Data parallel with torchrun inside one task: 2 CPU processes on gloo give the losses of one process on the same
global batch, within tolerance (ranks weight their own tokens, a single process weights all tokens of the batch)."""

import json

import pytest
from kfp.dsl import HTML, Dataset, Metrics, Model
from safetensors.torch import load_file

from kfp_llmops.components.data.prepare_dataset.core import prepare
from kfp_llmops.tokenized import read_prepared, write_prepared
from kfp_llmops.components.training.train_lora import core
from kfp_llmops.components.training.train_lora.component import train_lora
from kfp_llmops.datasets import instruction_pairs, read_jsonl

CONFIG = {"max_steps": 8, "batch_size": 16, "warmup_steps": 1}


@pytest.fixture(scope="module")
def prepared_dir(demo_assets, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    write_prepared(prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:256], tokenizer), out)
    return out


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(prepared_dir, base_model, tokenizer, tmp_path):
    adapter, metrics = Model(uri=str(tmp_path / "ddp")), Metrics(uri=str(tmp_path / "m"))
    train_lora.python_func(prepared=Dataset(uri=str(prepared_dir)), base_model=base_model, train_config=CONFIG,
                           adapter=adapter, metrics=metrics, loss_curve=HTML(uri=str(tmp_path / "curve")), nproc_per_node=2)
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert (result["world_size"], result["backend"]) == (2, "gloo")
    assert adapter.metadata["steps"] == 8

    data = read_prepared(prepared_dir)
    single = core.train(base_model, data.train, data.validation, core.TrainConfig.from_dict(CONFIG),
                        pad_id=tokenizer.pad_token_id, log=lambda _: None)
    ddp_losses = json.loads((tmp_path / "ddp" / "losses.json").read_text())
    assert ddp_losses == pytest.approx(single.losses, rel=0.02)
    core.save_adapter(single, core.TrainConfig.from_dict(CONFIG), tmp_path / "single")
    a, b = load_file(str(tmp_path / "single" / "adapter_model.safetensors")), load_file(str(tmp_path / "ddp" / "adapter_model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 0.05


def test_fsdp_shards_over_two_gloo_processes_and_matches_one_process(prepared_dir, base_model, tokenizer, tmp_path):
    """strategy fsdp: torch FSDP2 shards base and LoRA parameters over the ranks (each decoder layer, then the root);
    the losses and the gathered adapter match one process on the same global batches."""
    config = {**CONFIG, "strategy": "fsdp"}
    adapter, metrics = Model(uri=str(tmp_path / "fsdp")), Metrics(uri=str(tmp_path / "m"))
    train_lora.python_func(prepared=Dataset(uri=str(prepared_dir)), base_model=base_model, train_config=config,
                           adapter=adapter, metrics=metrics, loss_curve=HTML(uri=str(tmp_path / "curve")), nproc_per_node=2)
    result = json.loads((tmp_path / "fsdp" / "result.json").read_text())
    assert (result["world_size"], result["backend"], result["strategy"]) == (2, "gloo", "fsdp")

    data = read_prepared(prepared_dir)
    single = core.train(base_model, data.train, data.validation, core.TrainConfig.from_dict(CONFIG),
                        pad_id=tokenizer.pad_token_id, log=lambda _: None)
    assert json.loads((tmp_path / "fsdp" / "losses.json").read_text()) == pytest.approx(single.losses, rel=0.02)
    core.save_adapter(single, core.TrainConfig.from_dict(CONFIG), tmp_path / "single")
    a, b = load_file(str(tmp_path / "single" / "adapter_model.safetensors")), load_file(str(tmp_path / "fsdp" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and max(float((a[k] - b[k]).abs().max()) for k in a) < 0.05
    with pytest.raises(Exception, match="must be one of"):
        core.TrainConfig(strategy="deepspeed")
