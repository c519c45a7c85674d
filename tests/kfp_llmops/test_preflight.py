"""Every config mistake is named before anything runs: in the CLI for every backend, and in the pipelines' first step."""

import pytest

from kfp_llmops.cli import main
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.preflight import check_configs, check_remote_inputs, config_errors

REMOTE = ["--param", "base_model=org/base", "--param", "train_data=gs://b/t.jsonl", "--param", "eval_data=gs://b/e.jsonl"]


def test_every_mistake_is_listed_with_its_parameter():
    errors = config_errors({
        "train_config": {"rank": 8}, "eval_config": {"batch_size": 0}, "gate_config": {"max_primary_drop": -1},
        "rollout_config": {"schedule": [50]}, "screening": {"nope": 1}, "trainer_job": {"num_nodes": 2},
        "configs": [{"r": 8}, {"learning_rate": "fast"}], "model_name": "ignored",
    })
    assert [e.split(":")[0] for e in errors] == ["train_config", "eval_config", "gate_config", "rollout_config",
                                                 "screening", "trainer_job", "configs[1]"]
    assert "unknown field(s) ['rank']" in errors[0] and "learning_rate must be a number, got 'fast'" in errors[-1]
    assert config_errors({"train_config": {"r": 8}, "trainer_job": {}, "configs": [{}]}) == []
    with pytest.raises(ConfigError, match="invalid configuration:\n  - train_config: TrainConfig.r must be a positive"):
        check_configs({"train_config": {"r": 0}})
    with pytest.raises(ConfigError, match="train_config must be a JSON object"):
        check_configs({"train_config": "r=8"})


def test_prompt_format_is_checked_without_the_tokenizer():
    assert config_errors({"prompt_format": "auto"}) == config_errors({"prompt_format": "{{ messages[0]['content'] }}"}) == []
    assert config_errors({"prompt_format": "chatml"}) == [
        "prompt_format must be one of ('auto', 'chat-template', 'plain') or a Jinja chat template, got 'chatml'"]
    [error] = config_errors({"prompt_format": "{% for m in messages %}{{ m['content'] }}"})
    assert error.startswith("prompt_format: the Jinja template does not parse: Unexpected end of template")


def test_onnx_exporter_is_checked_before_anything_trains():
    assert config_errors({"onnx_exporter": "torchscript"}) == config_errors({"onnx_exporter": "torch.export"}) == []
    assert config_errors({"onnx_exporter": "dynamo"}) == [
        "onnx_exporter must be one of ('torchscript', 'torch.export', 'onnxruntime-genai'), got 'dynamo'"]


def test_a_remote_run_refuses_paths_on_this_machine(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    with pytest.raises(UserInputError, match=f"a vertex run cannot read files on this machine: train_data={data}"):
        check_remote_inputs({"train_data": str(data), "base_model": "org/base"}, "vertex")
    with pytest.raises(UserInputError, match="base_model=file:///models/x"):
        check_remote_inputs({"base_model": "file:///models/x"}, "kfp")
    check_remote_inputs({"train_data": "gs://b/t.jsonl", "base_model": "/mnt/shared/models/base"}, "kfp")  # a mount there


@pytest.mark.parametrize("argv, message", [
    (["--param", "train_config={bad"], "--param train_config: not valid JSON for a dict parameter"),
    (["--param", "no_such_param=1"], "unknown parameter(s) ['no_such_param']; this pipeline takes"),
    (["--param", 'train_config={"rank": 8}'], "train_config: unknown field(s) ['rank']"),
    (["--param", 'train_config={"r": 0}'], "TrainConfig.r must be a positive integer, got 0"),
    (["--param", 'train_config={"learning_rate": -0.1}'], "TrainConfig.learning_rate must be > 0"),
    (["--param", "train_processes=two"], "--param train_processes: not valid JSON for a integer parameter"),
    (["--param", "train_processes=[2]"], "parameter train_processes must be a integer, got [2]"),
])
def test_run_names_bad_parameters_before_any_step(argv, message, demo_assets, tmp_path, capsys):
    assert main(["run", "--demo-assets", str(demo_assets), "--pipeline-root", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize("argv, message", [
    (["--backend", "kfp", "--host", "http://127.0.0.1:9", *REMOTE], "cannot reach the Kubeflow Pipelines API at http://127.0.0.1:9"),
    (["--backend", "kfp", "--host", "http://127.0.0.1:9", "--param", 'gate_config={"x": 1}', *REMOTE], "gate_config: unknown field"),
    (["--backend", "vertex", "--project", "p", "--location", "l", "--pipeline-root", "/tmp/x", *REMOTE], "must be a gs:// URI"),
    (["--backend", "vertex", "--project", "p", "--location", "us-central1", "--pipeline-root", "gs://b/r", *REMOTE],
     "no usable Google Cloud credentials"),
    (["--backend", "kfp", "--host", "http://127.0.0.1:9", "--param", "base_model=org/base"], "missing required parameter(s) ['eval_data', 'train_data']"),
])
def test_remote_backends_fail_with_a_message_not_a_traceback(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login here either
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server: fail fast instead of probing
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_remote_run_with_demo_paths_is_refused(demo_assets, capsys):
    assert main(["run", "--backend", "kfp", "--host", "http://127.0.0.1:9", "--demo-assets", str(demo_assets)]) == 2
    assert "a kfp run cannot read files on this machine: base_model=" in capsys.readouterr().err
