"""package_adapter on a real adapter of the demo base: the serving folder holds only what a server loads, names its
base and pinned commit, loads on the base to the same logits as the trained adapter, and bad adapters are refused
with the reason (nothing written)."""

import json
import shutil

import pytest
import torch

from kfp_llmops.artifacts import LoraAdapterMetadata, serving_format_of, served_model_metadata
from kfp_llmops.components.compilation.package_adapter.core import SERVING_FILES, package
from kfp_llmops.errors import UserInputError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_the_package_is_the_adapter_alone_and_serves_the_same_logits(base_model, adapter_versions, tokenizer, tmp_path):
    from peft import PeftModel

    from kfp_llmops.modeling import load_causal_lm

    trained = adapter_versions["v1"]
    info = package(trained, tmp_path / "out", base_model=base_model, base_model_revision=COMMIT)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(SERVING_FILES)  # no history, no losses
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert (config["base_model_name_or_path"], config["revision"], config["r"]) == (base_model, COMMIT, info["rank"])
    assert info["size_bytes"] == sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    assert info["prompt_format"] == json.loads((trained / "prompt_format.json").read_text())["kind"]

    enc = tokenizer(["copy: sun moon"], return_tensors="pt")
    with torch.no_grad():
        logits = [PeftModel.from_pretrained(load_causal_lm(base_model), str(folder)).eval()(**enc).logits
                  for folder in (trained, tmp_path / "out")]
    assert torch.equal(logits[0], logits[1])
    lora = sum(p.numel() for n, p in PeftModel.from_pretrained(load_causal_lm(base_model), str(trained)).named_parameters()
               if "lora_" in n)
    assert info["parameters"] == lora


def test_a_folder_base_keeps_no_revision(base_model, adapter_versions, tmp_path):
    package(adapter_versions["v1"], tmp_path, base_model=base_model, base_model_revision="sha256:" + "0" * 64)
    assert json.loads((tmp_path / "adapter_config.json").read_text()).get("revision") is None


def test_bad_adapters_are_refused_with_the_reason(base_model, adapter_versions, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(adapter_versions["v1"], pickled)
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(UserInputError, match="adapter_model.safetensors.*adapter_model.bin: pickled weights are never served"):
        package(pickled, tmp_path / "a", base_model=base_model, base_model_revision="")
    with pytest.raises(UserInputError, match="trained on .* not on base_model 'org/other'"):
        package(adapter_versions["v1"], tmp_path / "b", base_model="org/other", base_model_revision="")
    other = tmp_path / "ia3"
    shutil.copytree(adapter_versions["v1"], other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "IA3"}))
    with pytest.raises(UserInputError, match="peft_type is 'IA3'"):
        package(other, tmp_path / "c", base_model=base_model, base_model_revision="")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_the_metadata_contract():
    meta = LoraAdapterMetadata(base_model="org/base", base_model_revision=COMMIT, rank=16, size_bytes=1000,
                               prompt_format="chat-template").to_metadata()
    kfp_local = {**meta, "rank": 16.0, "size_bytes": 1000.0, "sha256": "x"}  # kfp.local hands integers back as floats
    assert served_model_metadata(kfp_local) == LoraAdapterMetadata.from_metadata(meta)
    assert serving_format_of(meta) == "adapter"
    assert serving_format_of({"schema": "kfp_llmops.HfModel"}) == "hf" and serving_format_of({}) == "onnx"
    with pytest.raises(UserInputError, match="base_model is empty"):
        LoraAdapterMetadata(base_model="", base_model_revision="", rank=8, size_bytes=1, prompt_format="plain")
    with pytest.raises(UserInputError, match="not a kfp_llmops.LoraAdapter.*package_adapter"):
        LoraAdapterMetadata.from_metadata({"schema": "kfp_llmops.LoraAdapter"})
