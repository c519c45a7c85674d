import json

import numpy as np
import pytest

from kfp_llmops.adapters import merged_model
from kfp_llmops import onnx_runtime
from kfp_llmops.components.compilation.export_onnx import core, variants
from kfp_llmops.serving import triton_repository as repository
from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import load_causal_lm
from prompting import format_prompt

PROMPTS = [format_prompt(p) for p in ("reverse: apple bird cake", "sort: zoo map", "copy: sun")]


@pytest.fixture(scope="module")
def model(base_model):
    return load_causal_lm(base_model).eval()


@pytest.fixture(scope="module")
def exported(model, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    info = core.export_with_parity(model, tokenizer, PROMPTS, out)
    return out, info


def test_kv_cache_export_matches_torch_logits_and_greedy_tokens(exported):
    out, info = exported
    assert info["max_abs_logit_diff"] < 1e-4 and info["kv_cache"] is True
    assert info["greedy_identical"] == info["greedy_prompts"] == 3
    sess = onnx_runtime.session(out / "model.onnx")
    names = [i.name for i in sess.get_inputs()]
    assert names[:2] == ["input_ids", "attention_mask"] and names[2] == "past_key_values.0.key"
    assert [o.name for o in sess.get_outputs()][:2] == ["logits", "present.0.key"]


def test_each_decoding_step_costs_one_token(exported, tokenizer):
    """With the cache, step n+1 feeds one token and gets logits for one position, equal to a full re-run's last."""
    out, _ = exported
    sess = onnx_runtime.session(out / "model.onnx")
    layout = onnx_runtime.layout_of(sess)
    enc = tokenizer([PROMPTS[0]], return_tensors="np", add_special_tokens=False)
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    logits, *present = sess.run(None, {"input_ids": ids, "attention_mask": mask, **layout.empty_past(1)})
    nxt = logits[:, -1].argmax(-1)[:, None].astype(np.int64)
    step = sess.run(None, {"input_ids": nxt, "attention_mask": np.ones((1, ids.shape[1] + 1), np.int64),
                           **dict(zip(layout.past_names, present))})[0]
    full = sess.run(None, {"input_ids": np.concatenate([ids, nxt], 1), "attention_mask": np.ones((1, ids.shape[1] + 1), np.int64),
                           **layout.empty_past(1)})[0]
    assert step.shape[1] == 1
    np.testing.assert_allclose(step[:, -1], full[:, -1], atol=1e-4)


def test_variants_and_repository(exported, tokenizer, demo_assets, tmp_path):
    out, _ = exported
    pairs = instruction_pairs(read_jsonl(demo_assets / "eval.jsonl"))[:32]
    paths = variants.make_variants(out / "model.onnx", tmp_path / "v")
    measured = variants.measure(paths, tokenizer, pairs, variants.VariantConfig(latency_runs=3))
    assert set(measured) == {"fp32", "ort-optimized", "int8-dynamic"}
    assert measured["int8-dynamic"]["size_reduction"] > 0.5
    assert abs(measured["ort-optimized"]["perplexity_change"]) < 1e-4
    strict = variants.measure(paths, tokenizer, pairs, variants.VariantConfig(max_perplexity_increase=0.0, latency_runs=3))
    assert variants.promote(strict) in [n for n, m in strict.items() if m["within_budget"]]
    broken = {**measured, "int8-dynamic": {**measured["int8-dynamic"], "within_budget": False, "latency_ms": 0.0}}
    assert variants.promote(broken) != "int8-dynamic"  # a variant over the accuracy budget is never promoted

    sess = onnx_runtime.session(out / "model.onnx")
    repository.write_repository(tmp_path / "repo", "llm", out / "model.onnx", sess)
    assert repository.find_models(tmp_path / "repo") == {"llm": tmp_path / "repo" / "llm" / "1" / "model.onnx"}
    config = (tmp_path / "repo" / "llm" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 8" in config and "dynamic_batching" in config
    assert 'name: "past_key_values.0.key"\n    data_type: TYPE_FP32\n    dims: [ 2, -1, 32 ]' in config


def test_parity_failure_names_the_measured_difference(model, tokenizer, tmp_path):
    with pytest.raises(UserInputError, match=r"ONNX parity check failed for this 'llama' model: max \|logits torch - onnxruntime\| = .* \(tolerance 1e-12\)"):
        core.export_with_parity(model, tokenizer, PROMPTS, tmp_path, core.ExportConfig(parity_tolerance=1e-12))


def test_bad_inputs_are_named(base_model, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "meta-llama/Llama-3.2-1B"}))
    with pytest.raises(UserInputError, match=r"was trained on base model 'meta-llama/Llama-3.2-1B', not"):
        merged_model(base_model, str(adapter))
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"\x08\x07 truncated")
    with pytest.raises(UserInputError, match="not a loadable ONNX model"):
        onnx_runtime.session(corrupt)
    from transformers import BertConfig, BertForMaskedLM

    with pytest.raises(UserInputError, match=r"exports causal language models; a 'bert' BertForMaskedLM does not generate text"):
        core.decoder_module(BertForMaskedLM(BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=37)))
    with pytest.raises(ConfigError, match="opset"):
        core.ExportConfig(opset=9)


def test_a_truncated_weights_file_is_named(base_model, tmp_path):
    import shutil

    from kfp_llmops.modeling import load_causal_lm

    shutil.copytree(base_model, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserInputError, match=r"cannot load the model .*SafetensorError"):
        load_causal_lm(str(tmp_path / "m"))


def test_merged_weights_digest_follows_the_weights(base_model):
    import torch

    from kfp_llmops.adapters import weights_sha256

    model = load_causal_lm(base_model)
    first = weights_sha256(model)
    assert first == weights_sha256(load_causal_lm(base_model)) and len(first) == 64
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-3
    assert weights_sha256(model) != first


def test_sliding_window_is_found_where_some_layer_uses_it():
    from transformers import AutoConfig

    from kfp_llmops.components.compilation.export_onnx.core import active_sliding_window

    assert active_sliding_window(AutoConfig.for_model("mistral", sliding_window=4096, max_position_embeddings=32768)) == 4096
    assert active_sliding_window(AutoConfig.for_model("mistral", sliding_window=None)) is None
    assert active_sliding_window(AutoConfig.for_model("qwen2", sliding_window=4096)) is None  # use_sliding_window: false
    assert active_sliding_window(AutoConfig.for_model("gemma2", sliding_window=4096, max_position_embeddings=8192)) == 4096
    # a window as long as the context never slides
    assert active_sliding_window(AutoConfig.for_model("mistral", sliding_window=4096, max_position_embeddings=4096)) is None


def test_weights_in_external_data_go_through_variants_repository_and_serving(base_model, demo_assets, tokenizer, tmp_path):
    """What a model over 2 GB needs (forced here on the demo model): the graph with its weights in model.onnx.data,
    the optimized and int8 variants with theirs, the Triton repository and the server loading them."""
    from kfp_llmops.datasets import read_jsonl, records
    from kfp_llmops.modeling import load_causal_lm
    from kfp_llmops.prompts import PromptFormat
    from kfp_llmops.serving.local import infer_logits, local_server

    model = load_causal_lm(base_model).eval()
    pairs = records(read_jsonl(demo_assets / "eval.jsonl"))[:8]
    cfg = core.ExportConfig(external_data="always")
    info = core.build_repository(model, tokenizer, pairs, tmp_path / "repo", "llm", cfg,
                                 variant_dirs={"int8-dynamic": tmp_path / "int8"}, fmt=PromptFormat.resolve(tokenizer))
    assert info["external_data"] is True and info["greedy_identical"] == info["greedy_prompts"]
    served = repository.find_models(tmp_path / "repo")["llm"]
    [data] = onnx_runtime.external_files(served)
    assert served.stat().st_size < data.stat().st_size  # the graph; the weights are in the data file
    assert onnx_runtime.external_files(tmp_path / "int8" / "model.onnx")
    assert not list((tmp_path / "repo").glob("*.data"))  # weights only beside the served graph
    ids = tokenizer(["copy: sun"], return_tensors="np", add_special_tokens=False)
    with local_server("llm", tmp_path / "repo") as url:
        logits = infer_logits(url, "llm", ids["input_ids"], ids["attention_mask"])
    assert logits.shape[:2] == ids["input_ids"].shape


def test_torch_export_exporter_gives_attention_ops_and_passes_the_same_gate(tokenizer, demo_assets, tmp_path):
    """The opt-in exporter on a tiny grouped-query Llama (4 heads, 2 KV heads), through the whole repository build:
    parity gate, variants, Triton repository. Its graph uses ONNX's Attention op with the KV heads native (no
    Expand/Reshape repeating them) and RotaryEmbedding."""
    import os

    import onnx
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                                         eos_token_id=tokenizer.eos_token_id)).eval()
    pairs = instruction_pairs(read_jsonl(demo_assets / "eval.jsonl"))[:8]
    cfg = core.ExportConfig(exporter="torch.export")
    info = core.build_repository(model, tokenizer, pairs, tmp_path / "repo", "llm", cfg,
                                 variants.VariantConfig(latency_runs=2))
    assert (info["opset"], info["exporter"]) == (23, "torch.export")
    assert info["max_abs_logit_diff"] < 1e-4 and info["greedy_identical"] == info["greedy_prompts"] == 8
    assert "TRANSFORMERS_SDPA_FORCE_GQA" not in os.environ  # set only while tracing
    assert set(info["variants"]) == {"fp32", "ort-optimized", "int8-dynamic"}
    served = repository.find_models(tmp_path / "repo")["llm"]  # whichever variant was promoted keeps these ops
    nodes = onnx.load(str(served)).graph.node
    attention = [n for n in nodes if n.op_type == "Attention" and n.domain in ("", "ai.onnx")]
    assert len(attention) == 2 and sum(n.op_type == "RotaryEmbedding" for n in nodes) == 4
    # each attends over its layer's cache as it is (2 KV heads), not over a copy repeated to 4 heads
    assert [list(n.input[1:3]) for n in attention] == [[f"present.{i}.key", f"present.{i}.value"] for i in range(2)]
    config = (tmp_path / "repo" / "llm" / "config.pbtxt").read_text()
    assert 'name: "past_key_values.0.key"\n    data_type: TYPE_FP32\n    dims: [ 2, -1, 16 ]' in config


def test_exporter_and_opset_are_checked_where_the_config_is_built():
    assert (core.ExportConfig().target_opset, core.ExportConfig(exporter="torch.export").target_opset) == (18, 23)
    assert core.ExportConfig(exporter="torch.export", opset=24).target_opset == 24
    with pytest.raises(ConfigError, match=r"ExportConfig.exporter must be one of torchscript, torch.export, "
                                          r"onnxruntime-genai, got 'dynamo'"):
        core.ExportConfig(exporter="dynamo")
    with pytest.raises(ConfigError, match=r"opset must be >= 18 with the torch.export exporter, got 17"):
        core.ExportConfig(exporter="torch.export", opset=17)
    with pytest.raises(ConfigError, match=r"opset cannot be set with the onnxruntime-genai exporter"):
        core.ExportConfig(exporter="onnxruntime-genai", opset=21)


def test_onnxruntime_genai_exporter_is_exact_on_left_padded_batches(model, tokenizer, tmp_path):
    """onnxruntime-genai's builder graph (fused GroupQueryAttention), rewritten so that a left-padded batch is exact:
    through the same parity gate, and generating the same tokens as torch for a left-padded batch of four, both
    with the prompts' cache fed back each step (as Triton clients do) and decoded into one shared buffer (our loop)."""
    import onnx

    prompts = [format_prompt(p) for p in ("reverse: apple bird cake owl", "sort: zoo map", "copy: sun", "rotate: a b c")]
    info = core.export_with_parity(model, tokenizer, prompts, tmp_path, core.ExportConfig(exporter="onnxruntime-genai"))
    assert info["exporter"] == "onnxruntime-genai" and info["opset"] >= 21
    assert info["max_abs_logit_diff"] < 1e-4 and info["greedy_identical"] == info["greedy_prompts"] == 4
    graph = onnx.load(str(tmp_path / core.MODEL_FILE)).graph
    attention = [n for n in graph.node if n.op_type == "GroupQueryAttention"]
    assert len(attention) == model.config.num_hidden_layers and all(n.input[10] for n in attention)  # attention_bias
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", *onnx_runtime.CacheLayout.of(model.config).past_names]
    assert len(graph.node) < 70  # the demo model's TorchScript export has ~500 after onnxruntime's optimizer
    sess = onnx_runtime.session(tmp_path / core.MODEL_FILE, optimize=True)
    assert sess.get_modelmeta().custom_metadata_map[onnx_runtime.SHARED_CACHE_KEY] == "1"
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="np", padding=True, add_special_tokens=False)
    assert (enc["attention_mask"] == 0).any()  # the batch is padded
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    fed_back = np.stack(list(onnx_runtime._greedy_steps(sess, ids, mask, 24)), axis=1)
    shared = np.stack(list(onnx_runtime._greedy_shared_cache(sess, ids, mask, 24)), axis=1)
    assert fed_back.tolist() == shared.tolist()
    eos = tokenizer.eos_token_id
    up_to_eos = [row[: row.index(eos) + 1] if eos in row else row for row in shared.tolist()]
    assert up_to_eos == core.torch_greedy(model, tokenizer, prompts, 24)
    assert onnx_runtime.greedy_ids(sess, ids, mask, 24, eos) == up_to_eos  # each row stops after its end of sequence


def test_onnxruntime_genai_exporter_names_an_architecture_its_builder_lacks(tokenizer, tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
    with pytest.raises(UserInputError, match=r"onnxruntime-genai's builder cannot build this 'gpt2' model: .*"
                                             r"\(export it with exporter torchscript or torch.export\)"):
        core.export_with_parity(model, tokenizer, PROMPTS, tmp_path / "out", core.ExportConfig(exporter="onnxruntime-genai"))
    assert not (tmp_path / "out" / core.MODEL_FILE).exists()


def test_a_model_with_dropout_is_exported_and_checked_in_eval_mode(tokenizer, tmp_path):
    """gpt2's configs have dropout 0.1. Before, TorchScript's exporter put a model handed over in training mode back
    into training mode after export, so the parity check compared against a torch forward with dropout on and
    refused the model (max diff ~0.35). The export and its check are inference: the model stays in eval mode."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
    model.train()  # as a model may come from a training loop
    info = core.export_with_parity(model, tokenizer, PROMPTS, tmp_path)
    assert not model.training and info["max_abs_logit_diff"] < 1e-4 and info["greedy_identical"] == 3
