"""`kfp-llmops run --runner docker` before any container starts: what is mounted where, which user the steps run as,
and the errors when no engine runs (the runs themselves: tests/containers/test_pipeline_in_image.py)."""

import os
from pathlib import Path

import pytest

from kfp_llmops import container_run
from kfp_llmops.cli import main
from kfp_llmops.errors import UserInputError


def test_every_local_input_is_mounted_once_at_its_path_and_only_the_registry_and_checkpoints_writable(tmp_path):
    (tmp_path / "assets" / "base-model").mkdir(parents=True)
    (tmp_path / "assets" / "train.jsonl").write_text("{}\n")
    (tmp_path / "eval.jsonl").write_text("{}\n")
    (tmp_path / "reg").mkdir()
    root = tmp_path / "runs"
    (root / "old").mkdir(parents=True)
    arguments = {
        "base_model": str(tmp_path / "assets" / "base-model"),
        "train_data": str(tmp_path / "assets" / "train.jsonl"),
        "eval_data": str(tmp_path / "eval.jsonl"),
        "reference_data": str(root / "old"),  # inside the pipeline root: kfp.local mounts that
        "registry_uri": f"sqlite:///{tmp_path / 'reg' / 'registry.db'}",
        "train_config": {"checkpoint_dir": str(tmp_path / "ckpt"), "r": 8},
        "baseline_models": {"production": str(tmp_path / "assets")},  # holds base_model and train_data
        "system_prompt": "/not a path, and not there",
        "model_name": "llm",
    }
    mounts = container_run.local_mounts(arguments, root)
    assert [(m.path, m.writable) for m in mounts] == [
        (tmp_path / "assets", False), (tmp_path / "ckpt", True), (tmp_path / "eval.jsonl", False),
        (tmp_path / "reg", True)]
    assert (tmp_path / "ckpt").is_dir()  # created, so that it can be mounted before training writes it


def test_a_writable_path_inside_a_read_only_mount_is_mounted_again_writable(tmp_path):
    (tmp_path / "data" / "ckpt").mkdir(parents=True)
    arguments = {"base_model": str(tmp_path / "data"), "train_config": {"checkpoint_dir": str(tmp_path / "data" / "ckpt")}}
    mounts = container_run.local_mounts(arguments, tmp_path / "runs")
    assert [(m.path, m.writable) for m in mounts] == [(tmp_path / "data", False), (tmp_path / "data" / "ckpt", True)]


def test_steps_run_as_the_invoking_user_or_as_the_image_user_who_is_handed_the_writable_folders(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "f").write_text("x")
    user = container_run.container_user([tmp_path / "runs"])
    if os.getuid() == 0:
        assert user == "10001:10001"
        assert {(p.stat().st_uid, p.stat().st_gid) for p in [tmp_path / "runs", *(tmp_path / "runs").rglob("*")]} \
            == {(10001, 10001)}
    else:
        assert user == f"{os.getuid()}:{os.getgid()}"


def test_no_engine_is_a_clear_error_that_names_make_image(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    with pytest.raises(UserInputError, match=r"needs a Docker engine and none answers at unix://.*`make image`"):
        container_run.docker_client()


def test_cli_runner_docker_without_an_engine_exits_2_with_that_message(monkeypatch, tmp_path, demo_assets, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    code = main(["run", "--runner", "docker", "--demo-assets", str(demo_assets), "--pipeline-root", str(tmp_path / "r")])
    assert code == 2
    assert "make image" in capsys.readouterr().err
    assert main(["run", "--runner", "docker", "--backend", "kfp", "--host", "http://x"]) == 2
    assert "--runner docker is for local runs" in capsys.readouterr().err


def test_policy_and_container_ends():
    with pytest.raises(UserInputError, match="512m or 4g"):
        container_run.ContainerPolicy(mem_limit="lots")
    assert container_run.ContainerEnd("img", 137, True).reason.startswith("its container ran out of memory")
    assert "docker kill" in container_run.ContainerEnd("img", 137, False).reason
    assert container_run.ContainerEnd("img", 1, False).reason is None  # the step's own error says why


@pytest.mark.skipif(os.getuid() != 0, reason="as a non-root user the steps run as that user and read what it reads")
def test_an_input_the_image_user_cannot_read_is_named(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "model" / "model.safetensors").chmod(0o600)
    with pytest.raises(UserInputError, match=r"model.safetensors is not readable by the steps' user .*0o600"):
        container_run.docker_runner({"base_model": str(tmp_path / "model")}, tmp_path / "runs")


def test_artifacts_written_atomically_get_the_umask_modes_not_tempfiles_0600(tmp_path):
    from kfp_llmops.lineage import atomic_dir, atomic_file

    with atomic_file(tmp_path / "f.json") as tmp:
        tmp.write_text("{}")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "model.safetensors").write_bytes(b"x")
        (tmp / "model.safetensors").chmod(0o600)  # as transformers' save_pretrained leaves it
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "d" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask


def test_relative_paths_among_the_arguments_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("train.jsonl").write_text("{}\n")
    got = container_run.absolute_paths({"train_data": "train.jsonl", "model_name": "llm", "base_model": "org/name",
                                        "registry_uri": "sqlite:///x.db", "train_config": {"r": 8}})
    assert got == {"train_data": str(tmp_path / "train.jsonl"), "model_name": "llm", "base_model": "org/name",
                   "registry_uri": "sqlite:///x.db", "train_config": {"r": 8}}


def test_a_hub_base_model_takes_this_shells_hub_settings_and_a_local_one_runs_offline(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8099")
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-steps")
    assert container_run.hub_environment() == {"HF_ENDPOINT": "http://127.0.0.1:8099", "HF_TOKEN": "hf_x"}
    assert not container_run._offline({"base_model": "org/name@main"})
    assert container_run._offline({"base_model": "/models/base"})
    monkeypatch.delenv("HF_TOKEN")
    assert container_run.hub_environment() == {"HF_ENDPOINT": "http://127.0.0.1:8099"}
