"""Shared fixtures: the demo assets (a tiny pretrained Llama, its tokenizer and the reversal datasets).

They are built once per test session (about 70 s on 2 cores). Set ``KFP_LLMOPS_TEST_ASSETS`` to a folder
built by ``kfp-llmops demo-assets`` to reuse one while iterating.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/recording_server.py, shared by several tests
SCHEMAS = Path(__file__).resolve().parent / "schemas"  # vendored CRDs (see tests/schemas/README.md)


def _crds(name: str) -> list[Path]:
    found = sorted((SCHEMAS / name).glob("*.yaml"))
    if not found:
        pytest.fail(f"{name} CRD schemas missing from {SCHEMAS / name} (they are part of the repository)")
    return found


@pytest.fixture(scope="session")
def kserve_crds() -> list[Path]:
    """KServe's own CRDs (InferenceService, ServingRuntime), vendored under tests/schemas/kserve."""
    return _crds("kserve")


@pytest.fixture(scope="session")
def trainer_crds() -> list[Path]:
    """Kubeflow Trainer's TrainJob CRD, vendored under tests/schemas/trainer."""
    return _crds("trainer")


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> Path:
    from kfp_llmops.demo.assets import build_demo_assets

    given = os.environ.get("KFP_LLMOPS_TEST_ASSETS")
    if given and (Path(given) / "assets.json").exists():
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("demo-assets")
    build_demo_assets(out, log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def base_model(demo_assets) -> str:
    return str(demo_assets / "base-model")


@pytest.fixture(scope="session")
def tokenizer(base_model):
    from kfp_llmops.modeling import load_tokenizer

    return load_tokenizer(base_model)


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def write_jsonl():
    """``write_jsonl(path, rows)`` writes one JSON object per line and returns ``path``."""
    return _write_jsonl


@pytest.fixture
def read_jsonl():
    return _read_jsonl


@pytest.fixture(scope="session")
def onnx_repository(base_model, tokenizer, tmp_path_factory) -> Path:
    """A Triton model repository with the exported demo base model as ``reverser`` (version 1)."""
    from kfp_llmops.components.compilation.export_onnx.core import export_with_parity
    from kfp_llmops.onnx_runtime import session
    from kfp_llmops.serving.triton_repository import write_repository
    from kfp_llmops.modeling import load_causal_lm
    from prompting import format_prompt

    out = tmp_path_factory.mktemp("onnx")
    export_with_parity(load_causal_lm(base_model).eval(), tokenizer, [format_prompt("copy: sun moon")], out / "export")
    write_repository(out / "repo", "reverser", out / "export" / "model.onnx", session(out / "export" / "model.onnx"))
    return out / "repo"


@pytest.fixture(scope="session")
def adapter_versions(base_model, demo_assets, tokenizer, tmp_path_factory) -> dict[str, Path]:
    """Two LoRA adapters of the demo base that answer differently (``v1``: a short fine-tune; ``v2``: the same with
    its B matrices scaled up), each with its prompt format: two versions of one fine-tune, as train_lora saves them."""
    import shutil

    from safetensors.torch import load_file, save_file

    from kfp_llmops.components.data.prepare_dataset.core import prepare
    from kfp_llmops.components.training.train_lora import core
    from kfp_llmops.datasets import instruction_pairs, read_jsonl

    split = prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:64], tokenizer)
    cfg = core.TrainConfig(max_steps=4, batch_size=8, learning_rate=5e-3)
    result = core.train(base_model, split.train, split.validation, cfg, pad_id=tokenizer.pad_token_id, log=lambda _: None)
    v1 = tmp_path_factory.mktemp("v1")
    core.save_adapter(result, cfg, v1)
    split.prompt_format.save(v1)
    v2 = tmp_path_factory.mktemp("v2")
    shutil.copytree(v1, v2, dirs_exist_ok=True)
    weights = load_file(v2 / "adapter_model.safetensors")
    save_file({k: (v * 40 if "lora_B" in k else v).contiguous() for k, v in weights.items()}, v2 / "adapter_model.safetensors")
    return {"v1": v1, "v2": v2}
