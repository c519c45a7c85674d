"""Every manifest in manifests/ is valid against KServe's CRD schemas, unknown fields being errors."""

from pathlib import Path

import pytest
import yaml

from kfp_llmops.k8s_schema import crd_errors

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "manifests").glob("*.yaml"))


def test_there_are_manifests():
    assert MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path, kserve_crds):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            assert crd_errors(doc, kserve_crds) == [], f"{path.name}: {doc['kind']} {doc['metadata']['name']}"
        else:
            pytest.fail(f"{path.name}: no schema check for {doc['apiVersion']} {doc['kind']} yet")
