"""The MLflow backend as users run it: a local SQLite store and a real ``mlflow server`` (127.0.0.1), with versions
that carry their files, and registration and alias moves from several processes at the same moment."""

import json
import subprocess
import sys
import time

import pytest
from mlflow_server import MlflowServer

from kfp_llmops.lineage import sha256_path
from kfp_llmops.registry import PREVIOUS, PRODUCTION, open_registry

# Each worker opens the registry (a new SQLite store is created by whichever comes first), waits for a common start
# time so that all of them act at once, then registers or promotes and prints what it got.
WORKER = r"""
import json, sys, time
from kfp_llmops.registry import open_registry, promote
uri, start, action, arg = sys.argv[1], float(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
time.sleep(max(0.0, start - time.time()))
registry = open_registry(uri)
if action == "register":
    v = registry.register("llm", arg["source"], arg["digest"], {"worker": arg["worker"]})
    print(json.dumps({"digest": arg["digest"], "version": v.version, "created": v.created}))
else:
    print(json.dumps({"version": arg["version"], "replaced": promote(registry, "llm", arg["version"])}))
"""


def run_together(uri: str, action: str, args: list[dict], lead: float = 6.0) -> list[dict]:
    start = time.time() + lead  # enough for every interpreter to import mlflow before the common moment
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, uri, str(start), action, json.dumps(a)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in args]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(params=["sqlite", "server"])
def registry_uri(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'registry.db'}"  # not created yet: the workers race to create it
    return request.getfixturevalue("server")


def folder(path, text: str):
    (path / "sub").mkdir(parents=True)
    (path / "weights.safetensors").write_text(text)
    (path / "sub" / "config.json").write_text(json.dumps({"text": text}))
    return path


def test_a_version_carries_its_files_and_downloads_whole(registry_uri, tmp_path):
    src = folder(tmp_path / "adapter", "w1")
    digest = sha256_path(src)
    registry = open_registry(registry_uri)
    name = f"files-{tmp_path.name[-12:]}".lower()
    version = registry.register(name, str(src), digest, {"base_model": "Org/Base"})
    assert version.created and version.source.startswith("runs:/") and version.source.endswith(f"/{name}")
    for f in sorted(src.rglob("*"), reverse=True):  # the run holds the files: the original may go
        f.unlink() if f.is_file() else f.rmdir()
    got = registry.download(registry.find(name, digest), tmp_path / "downloaded")
    assert sha256_path(got) == digest and (got / "sub" / "config.json").is_file()
    assert registry.register(name, str(tmp_path / "elsewhere"), digest, {}).version == version.version  # by digest
    card = tmp_path / "card"
    card.write_text("# Model card")
    registry.attach(name, version.version, {"model_card.md": card})  # beside the files, in the version's run
    run_id = version.source.split("/")[1]
    assert {a.path for a in registry._client.list_artifacts(run_id)} == {name, "model_card.md"}
    assert sha256_path(registry.download(version, tmp_path / "again")) == digest  # the version's files are unchanged


def test_concurrent_registrations_of_one_digest_give_one_version(registry_uri, tmp_path):
    sources = {d: str(folder(tmp_path / d, d)) for d in ("a", "b")}
    digests = {d: sha256_path(s) for d, s in sources.items()}
    # 3 processes per digest, all at the same moment, against a store that may not exist yet
    args = [{"source": sources[d], "digest": digests[d], "worker": f"{d}{i}"} for i in range(3) for d in "ab"]
    results = run_together(registry_uri, "register", args)
    registry = open_registry(registry_uri)
    for d in "ab":
        got = {r["version"] for r in results if r["digest"] == digests[d]}
        assert len(got) == 1, results  # every process was told the same version
        assert [str(v.version) for v in registry._with_digest("llm", digests[d])] == sorted(got)  # and only it exists
    assert sum(r["created"] for r in results) <= 2 + 4  # losers of the race report the winner (created or not)


def test_concurrent_promotions_keep_one_linear_history(registry_uri, tmp_path):
    registry = open_registry(registry_uri)
    versions = [registry.register("llm", str(folder(tmp_path / d, d)), d * 64, {}).version for d in "xyz"]
    results = run_together(registry_uri, "promote", [{"version": v} for v in versions])
    # under the lock the promotions happen one after another: each replaced the one before it
    replaced = [r["replaced"] for r in results]
    assert replaced.count(None) == 1, results
    final = registry.aliases("llm")[PRODUCTION]
    assert sorted(x for x in replaced if x) == sorted(v for v in versions if v != final), results
    assert registry.aliases("llm")[PREVIOUS] in versions and registry.aliases("llm")[PREVIOUS] != final


def test_an_approval_is_a_tag_of_the_version_and_final(registry_uri, tmp_path):
    """What `kfp-llmops approve` writes and the await-approval step reads, on a store and on a server."""
    import uuid

    from kfp_llmops.components.registry.await_approval import core
    from kfp_llmops.errors import UserInputError

    name = f"approved-{uuid.uuid4().hex[:8]}"
    registry = open_registry(registry_uri)
    version = registry.register(name, "gs://bucket/models/llm", "q" * 64, {"gate": "passed"}).version
    assert core.read(registry, name, version) is None
    core.record(registry, name, version, approved=True, reason="reviewed", by="ana")
    again = open_registry(registry_uri)  # another process's view
    decision = core.read(again, name, version)
    assert (decision.approved, decision.by, decision.reason) == (True, "ana", "reviewed")
    assert again.get_version(name, version).tags["gate"] == "passed"
    with pytest.raises(UserInputError, match="a decision is final"):
        core.record(again, name, version, approved=False, reason="no")
