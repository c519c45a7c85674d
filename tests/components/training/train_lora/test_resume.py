"""Checkpoints and resume: a SIGKILLed training resumes from its latest complete checkpoint and ends with the adapter
an uninterrupted run produces; a checkpoint half-written when the process died is skipped."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from kfp_llmops import checkpoints

SCRIPT = """
import sys
from kfp_llmops.components.data.prepare_dataset.core import prepare
from kfp_llmops.components.training.train_lora import core
from kfp_llmops.datasets import instruction_pairs, read_jsonl
from kfp_llmops.modeling import load_tokenizer
assets, ckpt, out = sys.argv[1:4]
tok = load_tokenizer(assets + "/base-model")
split = prepare(instruction_pairs(read_jsonl(assets + "/train.jsonl"))[:256], tok)
cfg = core.TrainConfig(max_steps=40, batch_size=32, warmup_steps=4, checkpoint_dir=ckpt, checkpoint_every=5)
result = core.train(assets + "/base-model", split.train, split.validation, cfg, pad_id=tok.pad_token_id, log=print)
core.save_adapter(result, cfg, out)
"""


def _run(assets, ckpt, out):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(assets), str(ckpt), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _adapter(path: Path) -> dict:
    return load_file(str(path / "adapter_model.safetensors"))


def test_sigkill_then_resume_matches_an_uninterrupted_run(demo_assets, tmp_path):
    reference = _run(demo_assets, tmp_path / "ref-ckpt", tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stdout.read()

    victim = _run(demo_assets, tmp_path / "ckpt", tmp_path / "out")
    deadline = time.monotonic() + 240
    while not (tmp_path / "ckpt" / "step-00000010").exists():
        assert victim.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert not (tmp_path / "out").exists()
    last = checkpoints.complete_checkpoints(tmp_path / "ckpt")[-1]

    resumed = _run(demo_assets, tmp_path / "ckpt", tmp_path / "out")
    assert resumed.wait(timeout=300) == 0
    log = resumed.stdout.read()
    step = int(log.split("resumed from the checkpoint at step ")[1].split()[0])
    assert step >= int(last.name.split("-")[1]) >= 10
    ref, got = _adapter(tmp_path / "ref"), _adapter(tmp_path / "out")
    assert ref.keys() == got.keys()
    assert max(float((ref[k] - got[k]).abs().max()) for k in ref) <= 1e-4


def test_a_half_written_checkpoint_is_skipped(demo_assets, tmp_path, tokenizer):
    from kfp_llmops.components.data.prepare_dataset.core import prepare
    from kfp_llmops.components.training.train_lora import core
    from kfp_llmops.datasets import instruction_pairs, read_jsonl

    split = prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer)
    base = str(demo_assets / "base-model")
    cfg = core.TrainConfig(max_steps=10, batch_size=8, warmup_steps=1, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=5)
    full = core.train(base, split.train, split.validation, cfg, pad_id=tokenizer.pad_token_id, log=lambda _: None)
    # the process "died" while writing step 10: only step 5 is complete, step 10 has no marker, and a temp folder lingers
    ckpt = tmp_path / "ckpt"
    (ckpt / "step-00000010" / checkpoints.MARKER).unlink()
    (ckpt / ".step-00000010.x1y2").mkdir()
    (ckpt / ".step-00000010.x1y2" / "trainable.pt").write_bytes(b"half")
    logs = []
    again = core.train(base, split.train, split.validation, cfg, pad_id=tokenizer.pad_token_id, log=logs.append)
    assert "resumed from the checkpoint at step 5" in " ".join(logs)
    assert again.losses == pytest.approx(full.losses, abs=1e-5)
    assert not (ckpt / ".step-00000010.x1y2").exists()
    assert [p.name for p in checkpoints.complete_checkpoints(ckpt)] == ["step-00000005", "step-00000010"]


def test_config_loads_from_yaml_with_unknown_fields_rejected(tmp_path):
    from kfp_llmops.components.training.train_lora.core import TrainConfig
    from kfp_llmops.errors import ConfigError

    (tmp_path / "ok.yaml").write_text("r: 8\nmax_steps: 20\ntarget_modules: [q_proj, v_proj]\n")
    cfg = TrainConfig.from_yaml(str(tmp_path / "ok.yaml"))
    assert (cfg.r, cfg.max_steps, cfg.target_modules) == (8, 20, ["q_proj", "v_proj"])
    (tmp_path / "bad.yaml").write_text("r: 8\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['learning_rat'\]"):
        TrainConfig.from_yaml(str(tmp_path / "bad.yaml"))
