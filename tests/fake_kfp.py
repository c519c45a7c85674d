"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, served by :class:`RecordingServer`: experiments, runs and
recurring runs are created and echoed back with fixed ids."""


def kfp_api(req):
    if req.method == "GET" and req.path == "/apis/v2beta1/healthz":
        return 200, {"multi_user": False}
    if req.method == "GET" and req.path == "/apis/v2beta1/experiments":
        return 200, {}
    if req.method == "POST" and req.path == "/apis/v2beta1/experiments":
        return 200, {"experiment_id": "exp-1", "display_name": req.body["display_name"]}
    if req.method == "POST" and req.path == "/apis/v2beta1/recurringruns":
        return 200, {"recurring_run_id": "rr-1", "display_name": req.body["display_name"]}
    if req.method == "POST" and req.path == "/apis/v2beta1/runs":
        return 200, {"run_id": "run-9", "display_name": req.body["display_name"]}
    return 404, {"error": "not here"}
