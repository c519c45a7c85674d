"""Validates rendered Kubernetes manifests against CRD schemas the way ``kubectl apply --validate=strict`` does.

A field the schema does not define is an error (an API server would silently prune it), unless the schema says
``x-kubernetes-preserve-unknown-fields`` or gives ``additionalProperties``. ``metadata`` is checked against the
few ObjectMeta fields we render, since CRD schemas leave it open.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

_OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def strict(schema: dict) -> dict:
    """A copy of an OpenAPI v3 schema in which objects with ``properties`` reject unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@lru_cache(maxsize=None)
def _crd_schemas(crd_path: str) -> dict[tuple[str, str], dict]:
    import yaml

    crd = yaml.safe_load(Path(crd_path).read_text())
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    out = {}
    for version in crd["spec"]["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["properties"]["metadata"] = _OBJECT_META
        schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
        schema["properties"]["kind"] = {"const": kind}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        out[(f"{group}/{version['name']}", kind)] = schema
    return out


def crd_errors(manifest: dict, crd_paths: list[str | Path]) -> list[str]:
    """Every schema error of ``manifest`` against the CRD among ``crd_paths`` for its apiVersion and kind."""
    import jsonschema

    key = (manifest.get("apiVersion"), manifest.get("kind"))
    for path in crd_paths:
        schema = _crd_schemas(str(path)).get(key)
        if schema is not None:
            validator = jsonschema.Draft7Validator(schema)
            return [
                f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
            ]
    return [f"no CRD among {[str(p) for p in crd_paths]} defines {key[1]} {key[0]}"]
