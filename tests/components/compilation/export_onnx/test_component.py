import pytest
from kfp.dsl import Dataset, Metrics, Model

from kfp_llmops.artifacts import OnnxModelMetadata
from kfp_llmops.components.compilation.export_onnx.component import export_onnx
from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
from kfp_llmops.modeling import load_causal_lm


@pytest.fixture(scope="module")
def adapter_dir(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter")
    attach_lora(load_causal_lm(base_model), TrainConfig()).save_pretrained(out)
    return out


def test_writes_a_triton_repository_with_lineage(base_model, adapter_dir, demo_assets, tmp_path):
    onnx_model = Model(uri=str(tmp_path / "repo"))
    int8_model = Model(uri=str(tmp_path / "q8"))
    adapter = Model(uri=str(adapter_dir), metadata={"sha256": "feed"})
    export_onnx.python_func(base_model=base_model, adapter=adapter, eval_dataset=Dataset(uri=str(demo_assets / "eval.jsonl")),
                            onnx_model=onnx_model, optimized_model=Model(uri=str(tmp_path / "opt")),
                            int8_model=int8_model, variants=Metrics(uri=str(tmp_path / "variants")),
                            model_name="rev")
    meta = onnx_model.metadata
    typed = OnnxModelMetadata.from_metadata(meta)  # the kfp_llmops.OnnxModel contract
    assert typed.variant == meta["promoted_variant"] and typed.latency_ms > 0 and typed.greedy_identical == typed.greedy_prompts
    assert OnnxModelMetadata.from_metadata(int8_model.metadata).precision == "int8"

    again = Model(uri=str(tmp_path / "repo2"))  # the same inputs again: export.json's timings differ, the model does not
    export_onnx.python_func(base_model=base_model, adapter=adapter, eval_dataset=Dataset(uri=str(demo_assets / "eval.jsonl")),
                            onnx_model=again, optimized_model=Model(uri=str(tmp_path / "opt2")),
                            int8_model=Model(uri=str(tmp_path / "q82")), variants=Metrics(uri=str(tmp_path / "variants2")),
                            model_name="rev")
    if again.metadata["promoted_variant"] == meta["promoted_variant"]:
        assert again.metadata["model_sha256"] == meta["model_sha256"]
    assert again.metadata["merged_weights_sha256"] == meta["merged_weights_sha256"]
    assert meta["format"] == "triton-onnx-repository" and meta["opset"] == 18 and meta["max_abs_logit_diff"] < 1e-4
    assert meta["promoted_variant"] in ("fp32", "ort-optimized", "int8-dynamic")
    assert meta["adapter_sha256"] == "feed" and meta["parents"] == {"adapter": adapter.uri}
    assert (tmp_path / "repo" / "rev" / "1" / "model.onnx").exists() and (tmp_path / "repo" / "rev" / "config.pbtxt").exists()
    assert (tmp_path / "repo" / "tokenizer.json").exists()
    assert (tmp_path / "q8" / "model.onnx").stat().st_size < (tmp_path / "opt" / "model.onnx").stat().st_size


def test_the_onnxruntime_genai_exporter_goes_through_the_component(base_model, adapter_dir, demo_assets, tmp_path):
    """The merged fine-tune through onnxruntime-genai's builder, the gate, the variants and the Triton repository,
    as the pipeline's ``onnx_exporter: onnxruntime-genai`` runs it."""
    import onnx

    from kfp_llmops.serving import triton_repository as repository

    onnx_model = Model(uri=str(tmp_path / "repo"))
    export_onnx.python_func(base_model=base_model, adapter=Model(uri=str(adapter_dir), metadata={"sha256": "feed"}),
                            eval_dataset=Dataset(uri=str(demo_assets / "eval.jsonl")), onnx_model=onnx_model,
                            optimized_model=Model(uri=str(tmp_path / "opt")), int8_model=Model(uri=str(tmp_path / "q8")),
                            variants=Metrics(uri=str(tmp_path / "variants")), model_name="rev", exporter="onnxruntime-genai")
    meta = onnx_model.metadata
    assert meta["opset"] >= 21 and meta["max_abs_logit_diff"] < 1e-4 and meta["greedy_identical"] == meta["greedy_prompts"]
    served = repository.find_models(tmp_path / "repo")["rev"]
    assert any(n.op_type == "GroupQueryAttention" for n in onnx.load(str(served)).graph.node)


def test_a_failed_parity_check_leaves_no_half_written_repository(base_model, adapter_dir, demo_assets, tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_onnx.python_func(base_model=base_model, adapter=Model(uri=str(adapter_dir)),
                                eval_dataset=Dataset(uri=str(demo_assets / "eval.jsonl")),
                                onnx_model=Model(uri=str(tmp_path / "repo")), optimized_model=Model(uri=str(tmp_path / "o")),
                                int8_model=Model(uri=str(tmp_path / "q")), variants=Metrics(uri=str(tmp_path / "v")),
                                parity_tolerance=1e-12)
    assert "ERROR: ONNX parity check failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
