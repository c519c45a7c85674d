import json

import pytest
from kfp.dsl import Artifact, Metrics, Model

from kfp_llmops.components.deployment.deploy_model.component import deploy_model
from kfp_llmops.k8s_schema import crd_errors


def test_kserve_target_renders_a_valid_inference_service(tmp_path, kserve_crds):
    onnx_model = Model(uri="gs://bucket/runs/1/export-onnx/onnx_model", metadata={"sha256": "ab" * 32})
    manifest = Artifact(uri=str(tmp_path / "manifest"))
    deploy_model.python_func(onnx_model=onnx_model, manifest=manifest, smoke=Metrics(uri=str(tmp_path / "smoke")),
                             target="kserve", model_name="reverser", namespace="team-a")
    rendered = json.loads((tmp_path / "manifest").read_text())
    assert crd_errors(rendered, kserve_crds) == []
    assert rendered["spec"]["predictor"]["model"]["storageUri"] == onnx_model.uri
    assert rendered["metadata"]["annotations"]["kfp-llmops/sha256"] == "ab" * 32
    assert manifest.metadata["parents"] == {"onnx_model": onnx_model.uri}


def test_unknown_target_exits_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        deploy_model.python_func(onnx_model=Model(uri=str(tmp_path)), manifest=Artifact(uri=str(tmp_path / "m")),
                                 smoke=Metrics(uri=str(tmp_path / "s")), target="gke")
    assert "ERROR: DeployConfig.target must be one of ('local', 'kserve'), got 'gke'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
