"""A stateful stand-in for the Vertex AI REST API (models and endpoints), served by :class:`RecordingServer`."""

from __future__ import annotations

import itertools
import re
import threading

PARENT = "projects/p/locations/us-central1"
V1 = "type.googleapis.com/google.cloud.aiplatform.v1."


class FakeVertex:
    def __init__(self):
        self.models: dict[str, list[dict]] = {}  # model resource -> versions
        self.endpoints: dict[str, dict] = {}
        self._ids = itertools.count(100)
        self._clock = itertools.count(1)  # createTime seconds and etags: strictly increasing
        self._lock = threading.Lock()  # each API call is atomic, as on the real service
        self.triton = None  # host:port of a real model server behind every endpoint's rawPredict (Triton's routes)

    # --- helpers ---------------------------------------------------------------------------------------------
    def add_endpoint(self, endpoint_id: str, deployed: dict[str, str] | None = None, split: dict[str, int] | None = None):
        name = f"{PARENT}/endpoints/{endpoint_id}"
        self.endpoints[name] = {
            "name": name,
            "deployedModels": [{"id": i, "model": m.split("@")[0], "modelVersionId": m.split("@")[1]} for i, m in (deployed or {}).items()],
            "trafficSplit": dict(split or {}),
        }
        return name

    def _find(self, name: str):
        base, _, ref = name.partition("@")
        for v in self.models.get(base, []):
            if ref in (v["versionId"], *v["versionAliases"]) or (not ref and "default" in v["versionAliases"]):
                return v
        return None

    @staticmethod
    def _op(response_type: str, response: dict) -> dict:
        kind = response_type if "." in response_type else V1 + response_type
        return {"name": f"{PARENT}/operations/1", "done": True, "response": {"@type": kind, **response}}

    # --- the API ---------------------------------------------------------------------------------------------
    def __call__(self, req):
        if req.method == "POST" and req.path.endswith(":rawPredict"):  # served by the model, outside the lock
            return self._raw_predict(req)
        with self._lock:
            return self._call(req)

    def _raw_predict(self, req):
        """Vertex AI's Triton integration: the body goes to the route named by X-Vertex-Ai-Triton-Redirect."""
        import requests

        ep = self.endpoints[req.path.removeprefix("/v1/").removesuffix(":rawPredict")]
        if not ep["trafficSplit"] or self.triton is None:
            return 400, {"error": {"code": 400, "message": "no deployed model takes traffic", "status": "FAILED_PRECONDITION"}}
        route = (req.headers or {}).get("x-vertex-ai-triton-redirect")
        if not route:
            return 400, {"error": {"code": 400, "message": "no X-Vertex-Ai-Triton-Redirect header", "status": "INVALID_ARGUMENT"}}
        answer = requests.post(f"http://{self.triton}/{route}", json=req.body, timeout=60)
        return answer.status_code, answer.json()

    def _call(self, req):
        path = req.path.removeprefix("/v1/")
        if req.method == "GET" and path == f"{PARENT}/models":
            match = re.fullmatch(r'display_name="(.*)"', req.query.get("filter", ""))
            found = [vs[-1] for vs in self.models.values() if match and vs[-1]["displayName"] == match.group(1)]
            return 200, {"models": found}
        if req.method == "GET" and path.endswith(":listVersions"):
            versions = self.models.get(path.removesuffix(":listVersions"), [])
            match = re.fullmatch(r'labels\.([\w-]+)="(.*)"', req.query.get("filter", ""))
            if match:
                versions = [v for v in versions if v["labels"].get(match.group(1)) == match.group(2)]
            return 200, {"models": versions}
        if len((req.body or {}).get("labels") or (req.body or {}).get("model", {}).get("labels") or {}) > 64:
            return 400, {"error": {"code": 400, "message": "labels: at most 64", "status": "INVALID_ARGUMENT"}}
        if req.method == "POST" and path == f"{PARENT}/models:upload":
            model = req.body["model"]
            base = req.body.get("parentModel") or f"{PARENT}/models/{next(self._ids)}"
            versions = self.models.setdefault(base, [])
            for v in versions:
                v["versionAliases"] = [a for a in v["versionAliases"] if a != "default"]
            created = versions[0]["createTime"] if versions else f"2026-01-01T00:00:{next(self._clock):02d}Z"
            version = {**model, "name": base, "versionId": str(int(versions[-1]["versionId"]) + 1 if versions else 1),
                       "versionAliases": ["default"], "createTime": created, "etag": str(next(self._clock))}
            versions.append(version)
            return 200, self._op("UploadModelResponse", {"model": base, "modelVersionId": version["versionId"]})
        if req.method == "POST" and path.endswith(":mergeVersionAliases"):
            v = self._find(path.removesuffix(":mergeVersionAliases"))
            for alias in req.body["versionAliases"]:
                if alias.startswith("-"):
                    v["versionAliases"].remove(alias[1:])
                else:
                    assert not self._find(f"{v['name']}@{alias}"), f"alias {alias} is already on another version"
                    v["versionAliases"].append(alias)
            return 200, v
        if req.method == "DELETE" and path.endswith(":deleteVersion"):
            base, _, ref = path.removesuffix(":deleteVersion").partition("@")
            self.models[base] = [v for v in self.models[base] if v["versionId"] != ref]
            return 200, self._op("type.googleapis.com/google.protobuf.Empty", {})
        if req.method == "DELETE" and "/models/" in path:
            del self.models[path]
            return 200, self._op("type.googleapis.com/google.protobuf.Empty", {})
        if req.method == "PATCH" and "/models/" in path:  # update_model: labels, with an optional etag check
            v = self._find(path)
            if req.body.get("etag") and req.body["etag"] != v["etag"]:
                return 409, {"error": {"code": 409, "message": "etag mismatch", "status": "ABORTED"}}
            assert req.query.get("updateMask") == "labels", req.query
            v["labels"], v["etag"] = dict(req.body.get("labels", {})), str(next(self._clock))
            return 200, v
        if req.method == "GET" and "/models/" in path:
            v = self._find(path)
            return (200, v) if v else (404, {"error": {"code": 404, "message": f"{path} not found", "status": "NOT_FOUND"}})
        if "/endpoints/" in path:
            return self._endpoint(req, path)
        return 404, {"error": {"code": 404, "message": f"no fake for {req.method} {path}", "status": "NOT_FOUND"}}

    def _endpoint(self, req, path):
        name, _, verb = path.partition(":")
        ep = self.endpoints[name]
        if req.method == "GET":
            return 200, ep
        if verb == "deployModel":
            new_id = str(next(self._ids))
            model, _, version = req.body["deployedModel"]["model"].partition("@")
            ep["deployedModels"].append({"id": new_id, "model": model, "modelVersionId": version})
            ep["trafficSplit"] = {(new_id if k == "0" else k): v for k, v in req.body["trafficSplit"].items()}
            return 200, self._op("DeployModelResponse", {"deployedModel": {"id": new_id}})
        if verb == "undeployModel":
            ep["deployedModels"] = [m for m in ep["deployedModels"] if m["id"] != req.body["deployedModelId"]]
            ep["trafficSplit"] = dict(req.body.get("trafficSplit", {}))
            return 200, self._op("UndeployModelResponse", {})
        if req.method == "PATCH":
            assert req.query.get("updateMask") == "trafficSplit", req.query
            ep["trafficSplit"] = dict(req.body["trafficSplit"])
            return 200, ep
        return 404, {"error": {"code": 404, "message": f"no fake for {verb}", "status": "NOT_FOUND"}}
