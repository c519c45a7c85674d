import json
import random

import pytest

from kfp_llmops.demo.assets import DemoAssetsConfig, build_demo_assets, make_records
from kfp_llmops.errors import ConfigError
from kfp_llmops.lineage import sha256_path

TINY = DemoAssetsConfig(train_rows=40, eval_rows=10, pretrain_rows=200, pretrain_steps=3, pretrain_batch_size=8,
                        hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=1)


def test_assets_are_deterministic(tmp_path):
    a = build_demo_assets(tmp_path / "a", TINY, log=lambda _: None)
    b = build_demo_assets(tmp_path / "b", TINY, log=lambda _: None)
    for name in ("base-model", "train.jsonl", "eval.jsonl"):
        assert sha256_path(tmp_path / "a" / name) == sha256_path(tmp_path / "b" / name), name
    assert a["pretrain_final_loss"] == b["pretrain_final_loss"]


def test_demo_assets_layout_and_task(demo_assets, tokenizer):
    summary = json.loads((demo_assets / "assets.json").read_text())
    assert 500_000 < summary["parameters"] < 2_000_000
    files = {p.name for p in (demo_assets / "base-model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    train = [json.loads(line) for line in (demo_assets / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (demo_assets / "eval.jsonl").read_text().splitlines()]
    assert (len(train), len(evals)) == (2000, 100)
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in evals}
    for r in evals:
        words = r["instruction"].removeprefix("reverse: ").split()
        assert r["response"] == " ".join(reversed(words))
    text = "reverse: apple bird cake\nsun moon"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_records_never_repeat_an_instruction():
    records = make_records(("sort",), 200, random.Random(0), DemoAssetsConfig())
    assert len({r["instruction"] for r in records}) == 200


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="DemoAssetsConfig.train_rows must be > 0"):
        DemoAssetsConfig(train_rows=0)
