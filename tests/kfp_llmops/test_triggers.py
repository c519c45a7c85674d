"""`kfp-llmops run --if-data-changed`: nothing is submitted when production was trained on the same training data."""

import pytest

from kfp_llmops.cli import main
from kfp_llmops.errors import UserInputError
from kfp_llmops.lineage import sha256_path
from kfp_llmops.registry import open_registry, promote
from kfp_llmops.triggers import check_data_changed, train_data_digest


def _production(registry, digest: str, name: str = "llm") -> str:
    version = registry.register(name, "gs://bucket/models/llm", "o" * 63 + digest[0], {"train_data_sha256": digest})
    promote(registry, name, version.version)
    return version.version


def test_the_production_models_training_data_decides(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    assert check_data_changed(registry, "llm", "a" * 64).changed  # no production yet: a first run
    _production(registry, "a" * 64)
    same = check_data_changed(registry, "llm", "a" * 64)
    assert not same.changed and "unchanged" in same.message and "version 1" in same.message
    other = check_data_changed(registry, "llm", "b" * 64)
    assert other.changed and "changed: sha256 bbbbbbbbbbbb... vs aaaaaaaaaaaa..." in other.message


def test_a_vertex_label_holds_the_digest_cut_to_63_characters():
    from kfp_llmops.registry import ModelVersion

    class Labels:  # what the Vertex AI Model Registry gives back: tag values as labels of at most 63 characters
        uri = "vertex://projects/p/locations/l"

        def get_alias(self, name, alias):
            return ModelVersion(name, "3", "gs://m", "d", tags={"train_data_sha256": "a" * 63})

    assert not check_data_changed(Labels(), "llm", "a" * 64).changed
    assert check_data_changed(Labels(), "llm", "a" * 63 + "b").changed is False  # 63 characters decide
    assert check_data_changed(Labels(), "llm", "b" * 64).changed


def test_the_digest_comes_from_the_file_or_the_parameter(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"instruction": "a", "response": "b"}\n', encoding="utf-8")
    assert train_data_digest({"train_data": str(data)}) == sha256_path(data)
    assert train_data_digest({"train_data": str(tmp_path)}) == sha256_path(tmp_path)  # a folder of shards
    assert train_data_digest({"train_data": "gs://b/train.jsonl", "train_data_sha256": "c" * 64}) == "c" * 64
    with pytest.raises(UserInputError, match=r"pass --param train_data_sha256="):
        train_data_digest({"train_data": "gs://b/train.jsonl"})


def test_cli_submits_nothing_when_production_was_trained_on_this_data(tmp_path, demo_assets, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    registry = open_registry(f"sqlite:///{root / 'registry.db'}")
    _production(registry, sha256_path(demo_assets / "train.jsonl"))
    code = main(["run", "--demo-assets", str(demo_assets), "--pipeline-root", str(root), "--if-data-changed"])
    assert code == 0
    assert "training data unchanged" in capsys.readouterr().out
    assert {p.name for p in root.iterdir()} <= {"registry.db", "registry.db.lock"}  # no run folder: nothing ran
    code = main(["run", "--pipeline", "eval-only", "--demo-assets", str(demo_assets), "--pipeline-root", str(root),
                 "--param", f"adapter_uri={tmp_path}", "--if-data-changed"])
    assert code == 2 and "needs a pipeline that trains and registers" in capsys.readouterr().err
