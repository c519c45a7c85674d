"""fetch_base_model: a hub id resolved once to its commit and copied into the run; the steps load that copy.

The hub is tests/fake_hub.py on 127.0.0.1 (huggingface_hub's real download path against it); the model is a seeded
tiny Llama with the demo tokenizer."""

import json
from pathlib import Path

import pytest

from fake_hub import FakeHub
from kfp_llmops.components.registry.fetch_base_model import core
from kfp_llmops.errors import UserInputError
from kfp_llmops.lineage import sha256_path
from kfp_llmops.modeling import (MODEL_COPIES_ENV, load_causal_lm, load_tokenizer, pinned_reference, resolved_revision,
                                 split_revision, use_base_model)


@pytest.fixture(scope="module")
def repo_folder(tmp_path_factory, base_model):
    """The demo base model as a hub repo would hold it, with what a step must not fetch beside it."""
    import shutil

    folder = tmp_path_factory.mktemp("repo")
    for f in Path(base_model).iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    (folder / "original").mkdir()
    (folder / "original" / "consolidated.00.pth").write_bytes(b"\x80pickle" * 100)  # Meta's copy: never fetched
    (folder / "pytorch_model.bin").write_bytes(b"\x80pickle" * 100)  # pickled weights: never fetched
    (folder / "README.md").write_text("# tiny\n")
    pickles = tmp_path_factory.mktemp("pickles")
    shutil.copy(folder / "config.json", pickles / "config.json")
    (pickles / "pytorch_model.bin").write_bytes(b"\x80pickle")
    return folder, pickles


@pytest.fixture
def hub(repo_folder, monkeypatch, tmp_path):
    from huggingface_hub import constants

    folder, pickles = repo_folder
    with FakeHub({"org/tiny": folder, "org/pickled": pickles}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # a pod's empty cache
        monkeypatch.setenv(MODEL_COPIES_ENV, "{}")  # restored (unset) after each test
        yield hub


def test_a_hub_id_is_pinned_to_its_commit_and_copied_once(hub, repo_folder, tmp_path):
    folder, _ = repo_folder
    fetched = core.fetch("org/tiny", tmp_path / "base")
    assert fetched.source == "hub" and fetched.copied and fetched.revision == hub.commit("org/tiny")
    wanted = sorted(p.name for p in folder.iterdir() if p.suffix in (".json", ".safetensors", ".jinja", ".txt"))
    assert list(fetched.files) == wanted and "pytorch_model.bin" not in fetched.files
    copied = sorted(p.relative_to(tmp_path / "base" / "model").as_posix() for p in (tmp_path / "base" / "model").rglob("*")
                    if p.is_file())
    assert copied == wanted  # no pickles, no original/, no download bookkeeping
    assert hub.total_bytes() == fetched.size_bytes == sum((folder / f).stat().st_size for f in wanted)
    manifest = json.loads((tmp_path / "base" / "base-model.json").read_text())
    assert manifest["load_from"] == "model" and manifest["base_model"] == "org/tiny"

    # a step given the artifact: every load of "org/tiny" reads the copy, and the hub sends nothing more
    served = hub.total_bytes()
    assert use_base_model("org/tiny", str(tmp_path / "base")) == str(tmp_path / "base" / "model")
    model = load_causal_lm("org/tiny")
    tokenizer = load_tokenizer("org/tiny")
    assert hub.total_bytes() == served
    assert model.name_or_path == "org/tiny"  # what peft writes into adapter_config.json, as without the copy
    assert tokenizer.pad_token is not None
    assert resolved_revision("org/tiny") == hub.commit("org/tiny")
    assert pinned_reference("org/tiny") == f"org/tiny@{hub.commit('org/tiny')}"  # what a Trainer job's nodes load
    assert split_revision("org/other") == ("org/other", None)  # other models are not touched


def test_without_the_copy_every_load_downloads_the_pinned_commit(hub, repo_folder, tmp_path):
    """cache false: only the commit is pinned; a step in a pod of its own then fetches the weights itself (what every
    step did before fetch_base_model: the 'before' side of the README's bytes-per-run figures)."""
    fetched = core.fetch("org/tiny@main", tmp_path / "base", copy=False)
    commit = hub.commit("org/tiny")
    assert not fetched.copied and fetched.load_from == f"org/tiny@{commit}" and hub.total_bytes() == 0
    assert not (tmp_path / "base" / "model").exists()
    use_base_model("org/tiny@main", str(tmp_path / "base"))
    assert split_revision("org/tiny@main") == ("org/tiny", commit)
    load_causal_lm("org/tiny@main")
    assert hub.bytes_served[("org/tiny", "model.safetensors")] == (repo_folder[0] / "model.safetensors").stat().st_size
    assert ("org/tiny", "pytorch_model.bin") not in hub.bytes_served


def test_a_folder_is_pinned_by_its_digest_and_read_in_place(hub, base_model, tmp_path):
    fetched = core.fetch(base_model, tmp_path / "base")
    assert fetched.source == "local" and not fetched.copied and fetched.load_from == str(Path(base_model).resolve())
    assert fetched.revision == "sha256:" + sha256_path(base_model) and hub.total_bytes() == 0
    use_base_model(base_model, str(tmp_path / "base"))
    assert resolved_revision(base_model) == fetched.revision
    assert load_causal_lm(base_model).name_or_path == base_model


@pytest.mark.parametrize("ref, message", [
    ("org/missing", "no such repository"),
    ("org/tiny@v9", "no such revision"),
    ("org/pickled", "only pickled weights (pytorch_model.bin), which are never unpickled"),
    ("/no/such/folder", "neither a folder here nor a hub id"),
])
def test_bad_base_models_are_named_and_leave_no_manifest(hub, tmp_path, ref, message):
    (tmp_path / "base").mkdir()
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        core.fetch(ref, tmp_path / "base")
    assert not (tmp_path / "base" / "base-model.json").exists()


def test_a_hub_that_does_not_answer_is_named(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    with pytest.raises(UserInputError, match="could not be reached"):
        core.fetch("org/tiny", tmp_path / "base")


def test_a_step_given_another_models_artifact_is_refused(hub, base_model, tmp_path):
    core.fetch(base_model, tmp_path / "base")
    with pytest.raises(UserInputError, match="fetched for .* but this step was given base_model 'org/tiny'"):
        use_base_model("org/tiny", str(tmp_path / "base"))
    assert use_base_model("org/tiny", None) == "org/tiny"  # no artifact: loads as given
