"""The pipeline in the runtime image, as a cluster runs it: every step a container of `make image`'s image, started
read-only, without capabilities, as a non-root user (Kubernetes Pod Security "restricted").

Marked ``container``: `make test-container` (and `.ci/run`, after `make image`) runs them; they need a Docker engine
and the image, and fail, not skip, without them."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kfp_llmops import container_run
from kfp_llmops.cli import main
from kfp_llmops.cli.demo import demo_arguments
from kfp_llmops.images import RUNTIME_IMAGE
from kfp_llmops.lineage import sha256_path
from kfp_llmops.local_run import run_local
from kfp_llmops.pipelines.registry import build
from kfp_llmops.registry import open_registry

pytestmark = pytest.mark.container
ROOT = Path(__file__).resolve().parents[2]
TRAIN = {"max_steps": 60, "checkpoint_every": 10}


@pytest.fixture(scope="module")
def client():
    client = container_run.docker_client()
    container_run.ensure_image(client, RUNTIME_IMAGE)
    return client


def _arguments(demo_assets, tmp_path, **extra) -> dict:
    return {**demo_arguments(demo_assets), "registry_uri": f"sqlite:///{tmp_path / 'registry' / 'registry.db'}",
            **extra}


def _adapter_digest(summary) -> str:
    [adapter] = summary.artifacts("train-lora", "adapter")
    return sha256_path(Path(adapter["uri"]) / "adapter_model.safetensors")


def test_the_steps_run_restricted(client, demo_assets, tmp_path):
    """What each step's container gets: read-only root, /tmp writable, no capabilities, no new privileges, a non-root
    user, the inputs at their host paths (read-only) and the registry folder writable."""
    arguments = _arguments(demo_assets, tmp_path)
    (tmp_path / "registry").mkdir()
    runner = container_run.docker_runner(arguments, tmp_path / "runs")
    args = dict(runner.container_run_args)
    probe = ("id -u; touch /opt/venv/x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp-writable; "
             "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
             f"test -r {demo_assets}/base-model/config.json && echo inputs-readable; "
             f"touch {demo_assets}/x 2>/dev/null && echo inputs-writable; "
             f"touch {tmp_path}/registry/x && echo registry-writable")
    out = client.containers.run(RUNTIME_IMAGE, ["sh", "-c", probe], remove=True, **args).decode()
    lines = out.split()
    assert lines[0] != "0" and "root-writable" not in out and "inputs-writable" not in out, out
    assert {"tmp-writable", "inputs-readable", "registry-writable"} <= set(lines), out
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out, out


@pytest.fixture(scope="module")
def restricted_run(client, demo_assets, tmp_path_factory):
    """The whole demo pipeline in read-only, capability-less, non-root containers."""
    tmp = tmp_path_factory.mktemp("restricted")
    arguments = _arguments(demo_assets, tmp, train_config=TRAIN)
    (tmp / "registry").mkdir()
    return run_local(build("finetune-and-rollout", "vertex"), arguments, tmp / "runs", runner="docker")


def test_the_whole_demo_pipeline_passes_in_restricted_containers(restricted_run):
    summary = restricted_run
    assert summary.succeeded, summary.text()
    assert all(s.status == "SUCCESS" for s in summary.steps), summary.text()
    assert summary.artifacts("regression-gate", "decision")[0]["metadata"]["passed"] is True
    lineage = summary.artifacts("register-model", "lineage")[0]["metadata"]
    assert int(lineage["version"]) == 1
    assert summary.artifacts("rollout-model", "report"), summary.text()


def test_a_killed_training_container_resumes_from_its_checkpoint_to_the_same_adapter(client, demo_assets,
                                                                                      restricted_run, tmp_path, capfd):
    """`docker kill` on train-lora mid-run: the task's retry (set_retry, as a cluster retries it) resumes from the
    last complete checkpoint and ends with the adapter of the uninterrupted run (same seed, same data)."""
    ckpt = tmp_path / "checkpoints"
    arguments = _arguments(demo_assets, tmp_path, train_config={**TRAIN, "checkpoint_dir": str(ckpt)})
    (tmp_path / "registry").mkdir()
    killed = []

    def kill_training_at_its_second_checkpoint():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (ckpt / "step-00000020" / "COMPLETE").exists():
            time.sleep(0.05)
        for c in client.containers.list(filters={"ancestor": RUNTIME_IMAGE}):
            if "train_lora" in c.attrs["Args"]:  # --function_to_execute train_lora
                c.kill()
                killed.append(c.id)

    killer = threading.Thread(target=kill_training_at_its_second_checkpoint, daemon=True)
    killer.start()
    summary = run_local(build("finetune-and-rollout", "vertex"), arguments, tmp_path / "runs", runner="docker")
    killer.join(timeout=5)
    log = capfd.readouterr().out
    assert killed, "training ended before it could be killed"
    assert "the step failed: its container was killed (SIGKILL" in log
    assert summary.succeeded, summary.text()
    step = int(log.split("resumed from the checkpoint at step ")[1].split()[0])
    assert 20 <= step < TRAIN["max_steps"]
    assert _adapter_digest(summary) == _adapter_digest(restricted_run)  # as the uninterrupted run with the same seed
    assert int(summary.artifacts("register-model", "lineage")[0]["metadata"]["version"]) == 1


def test_a_step_out_of_memory_is_named_and_nothing_is_registered(client, demo_assets, tmp_path):
    arguments = _arguments(demo_assets, tmp_path, train_config=TRAIN)
    (tmp_path / "registry").mkdir()
    policy = container_run.ContainerPolicy(mem_limit="300m")
    summary = run_local(build("finetune-and-rollout", "vertex"), arguments, tmp_path / "runs", runner="docker",
                        container_policy=policy)
    assert not summary.succeeded
    assert "ran out of memory" in summary.error and "finished with status FAILURE" in summary.error, summary.error
    assert open_registry(arguments["registry_uri"]).get_version("llm", "1") is None
    assert not summary.artifacts("register-model", "lineage")


def test_no_image_is_named_with_make_image(client):
    with pytest.raises(container_run.UserInputError, match="make image"):
        container_run.ensure_image(client, "127.0.0.1:9/kfp-llmops/runtime:0.0.0-missing")


@pytest.fixture
def local_registry(tmp_path):
    """Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, storing in tmp_path."""
    binary = "/usr/bin/docker-registry"
    if not Path(binary).exists():
        pytest.fail("the mirror test needs Debian's docker-registry (apt-get install docker-registry)")
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'oci'}\n"
                      "http:\n  addr: 127.0.0.1:5055\n", encoding="utf-8")
    server = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import requests

    for _ in range(100):
        try:
            requests.get("http://127.0.0.1:5055/v2/", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield "127.0.0.1:5055/kfp-llmops"
    server.terminate()
    server.wait(timeout=10)


def test_a_mirror_holds_the_image_and_the_runner_pulls_it_from_there(client, demo_assets, local_registry, restricted_run,
                                                                      tmp_path):
    mirrored = f"{local_registry}/runtime:{RUNTIME_IMAGE.rsplit(':', 1)[1]}"
    client.images.get(RUNTIME_IMAGE).tag(mirrored)
    for line in client.images.push(mirrored, stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(mirrored)  # only the mirror has it now

    env = {**os.environ, "KFP_LLMOPS_IMAGE_REGISTRY": local_registry}
    specs = tmp_path / "specs"
    subprocess.run([sys.executable, "-m", "kfp_llmops.cli", "compile", "--out", str(specs)], env=env, check=True,
                   cwd=ROOT, capture_output=True)
    spec = (specs / "kfp" / "eval-only.yaml").read_text()
    assert f"image: {mirrored}" in spec and "ghcr.io" not in spec

    [adapter] = restricted_run.artifacts("train-lora", "adapter")
    run = subprocess.run([sys.executable, "-m", "kfp_llmops.cli", "run", "--runner", "docker", "--pipeline", "eval-only",
                          "--demo-assets", str(demo_assets), "--param", f"adapter_uri={adapter['uri']}",
                          "--pipeline-root", str(tmp_path / "runs")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert client.images.get(mirrored).id == client.images.get(RUNTIME_IMAGE).id
    client.images.remove(mirrored)


@pytest.fixture
def demo_hub(demo_assets, monkeypatch):
    """The demo base model as the hub repo ``demo/base-model`` (tests/fake_hub.py on 127.0.0.1; containers on the
    host network reach it through HF_ENDPOINT, which container_run passes on)."""
    from fake_hub import FakeHub

    with FakeHub({"demo/base-model": demo_assets / "base-model"}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub


@pytest.mark.parametrize("cache", [True, False], ids=["one-copy", "pinned-only"])
def test_a_hub_base_model_is_fetched_once_per_run(client, demo_assets, demo_hub, tmp_path, cache):
    """Every step in a container of its own starts with an empty Hugging Face cache, as a pod does. With
    fetch-base-model's copy the hub sends the weights once; pinned only, every step that loads them fetches them
    again (what each run did before), all at the one commit the first step resolved."""
    arguments = _arguments(demo_assets, tmp_path, base_model="demo/base-model", cache_base_model=cache,
                           train_config=TRAIN)
    (tmp_path / "registry").mkdir()
    summary = run_local(build("finetune-and-rollout", "vertex"), arguments, tmp_path / "runs", runner="docker")
    assert summary.succeeded and summary.artifacts("register-model", "lineage"), summary.text()
    weights = (demo_assets / "base-model" / "model.safetensors").stat().st_size
    downloads = demo_hub.bytes_served[("demo/base-model", "model.safetensors")] / weights
    # train, evaluate and export load the weights (prepare only the tokenizer)
    assert downloads == (1 if cache else 3), demo_hub.bytes_served
    commit = demo_hub.commit("demo/base-model")
    fetched = summary.artifacts("fetch-base-model", "base")[0]["metadata"]
    assert (fetched["source"], fetched["revision"], fetched["copied"]) == ("hub", commit, cache)
    lineage = json.loads(Path(summary.artifacts("register-model", "lineage")[0]["uri"]).read_text())
    assert (lineage["base_model"], lineage["base_model_revision"]) == ("demo/base-model", commit)
    [adapter] = summary.artifacts("train-lora", "adapter")
    trained_on = json.loads((Path(adapter["uri"]) / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert trained_on == "demo/base-model"  # not the artifact's path
