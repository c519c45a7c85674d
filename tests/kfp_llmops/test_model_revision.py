"""A base model pinned to a hub revision (``org/name@<commit>``) loads that revision in every stage, and the lineage
records the commit; tested offline on a hub cache laid out as the hub client writes it, holding the demo model."""

import shutil

import pytest

from kfp_llmops.errors import UserInputError
from kfp_llmops.modeling import load_causal_lm, load_tokenizer, resolved_revision, split_revision

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def hub_cache(base_model, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--org--tiny"
    shutil.copytree(base_model, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(OTHER)  # main has moved on since the commit we pin
    (repo / "refs" / "v1.0").write_text(COMMIT)
    shutil.copytree(base_model, repo / "snapshots" / OTHER)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc
    import transformers.utils.hub as th

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(th, "TRANSFORMERS_CACHE", str(tmp_path / "hub"), raising=False)
    return tmp_path / "hub"


def test_split_revision(tmp_path):
    assert split_revision("org/name@" + COMMIT) == ("org/name", COMMIT)
    assert split_revision("org/name@v1.0") == ("org/name", "v1.0")
    assert split_revision("org/name") == ("org/name", None)
    odd = tmp_path / "models@2024"  # a local folder whose name holds an @ is a path, not a revision
    odd.mkdir()
    assert split_revision(str(odd)) == (str(odd), None)


def test_a_pinned_revision_loads_and_resolves_to_its_commit(hub_cache):
    assert type(load_causal_lm(f"org/tiny@{COMMIT}")).__name__ == "LlamaForCausalLM"
    assert load_tokenizer("org/tiny@v1.0").pad_token is not None
    assert resolved_revision(f"org/tiny@{COMMIT}") == COMMIT
    assert resolved_revision("org/tiny@v1.0") == COMMIT  # a tag resolves to its commit
    assert resolved_revision("org/tiny") == OTHER  # unpinned: whatever main holds today, recorded
    with pytest.raises(UserInputError, match="cannot load the model 'org/tiny@" + "f" * 40):
        load_causal_lm("org/tiny@" + "f" * 40)


def test_a_local_folder_is_identified_by_its_content(base_model):
    from kfp_llmops.lineage import sha256_path

    assert resolved_revision(base_model) == "sha256:" + sha256_path(base_model)
