import socket

import numpy as np
import pytest

from kfp_llmops.components.compilation.export_onnx.core import export_with_parity, layout_of, session
from kfp_llmops.components.compilation.export_onnx.repository import write_repository
from kfp_llmops.components.deployment.deploy_model import core
from kfp_llmops.errors import ConfigError
from kfp_llmops.k8s_schema import crd_errors
from kfp_llmops.modeling import load_causal_lm
from kfp_llmops.prompts import format_prompt


@pytest.fixture(scope="module")
def repo(base_model, tokenizer, tmp_path_factory):
    """A Triton model repository with the exported demo model as ``reverser``."""
    out = tmp_path_factory.mktemp("onnx")
    export_with_parity(load_causal_lm(base_model).eval(), tokenizer, [format_prompt("copy: sun moon")], out / "export")
    write_repository(out / "repo", "reverser", out / "export" / "model.onnx", session(out / "export" / "model.onnx"))
    return out / "repo"


def test_inference_service_is_valid_against_kserve_crd(kserve_crds):
    cfg = core.DeployConfig(target="kserve", model_name="reverser", namespace="team-a", storage_uri="gs://bucket/models/reverser/1")
    manifest = core.render_inference_service(cfg, labels={"kfp-llmops/run": "r1"})
    assert crd_errors(manifest, kserve_crds) == []
    model = manifest["spec"]["predictor"]["model"]
    assert (model["modelFormat"], model["protocolVersion"], model["storageUri"]) == ({"name": "onnx"}, "v2", cfg.storage_uri)


def test_strict_validation_catches_an_unknown_field(kserve_crds):
    manifest = core.render_inference_service(core.DeployConfig(target="kserve", storage_uri="gs://b/m"))
    manifest["spec"]["predictor"]["model"]["storageURI"] = "typo"
    assert crd_errors(manifest, kserve_crds) == ["spec.predictor.model: Additional properties are not allowed ('storageURI' was unexpected)"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "gke"}, "DeployConfig.target must be one of"),
        ({"model_name": "My_Model"}, "DeployConfig.model_name must be a DNS-1123 label"),
        ({"target": "kserve"}, "DeployConfig.storage_uri is required for target 'kserve'"),
    ],
)
def test_bad_deploy_config_is_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        core.DeployConfig(**kwargs)


def test_local_server_answers_open_inference_protocol_v2_binary_and_json(repo, tokenizer, tmp_path):
    enc = tokenizer([format_prompt("reverse: apple bird")], return_tensors="np", add_special_tokens=False)
    sess = session(repo / "reverser" / "1" / "model.onnx")
    direct = sess.run(["logits"], {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                   **layout_of(sess).empty_past(1)})[0]
    with core.local_server("reverser", repo, log_path=tmp_path / "server.log") as url:
        binary = core.infer_logits(url, "reverser", enc["input_ids"], enc["attention_mask"], binary=True)
        as_json = core.infer_logits(url, "reverser", enc["input_ids"], enc["attention_mask"], binary=False)
        smoke = core.smoke_test(url, "reverser", tokenizer, format_prompt("reverse: apple bird"))
    np.testing.assert_allclose(binary, direct, atol=1e-5)
    np.testing.assert_allclose(as_json, direct, atol=1e-4)
    assert smoke["logits_shape"] == [1, enc["input_ids"].shape[1], len(tokenizer)]
    host, port = url.split(":")
    with pytest.raises(ConnectionRefusedError):  # the server was stopped with the block
        socket.create_connection((host, int(port)), timeout=2)
