"""Serves an ONNX model with KServe's ``ModelServer`` over the Open Inference Protocol (v2).

``python -m kfp_llmops.serving.onnx_server --model-repository REPO --http-port 8080`` serves every model of a
Triton model repository (``<name>/<version>/model.onnx``, the highest version); ``--model-name N --model-path F``
serves one file.

The inputs and outputs are those of the ONNX graph (for our exported LLMs: ``input_ids``, ``attention_mask`` and the
``past_key_values.*`` in, ``logits`` and ``present.*`` out), so any v2 client, ``tritonclient.http`` included, can
call it. A request that leaves out the ``past_key_values.*`` inputs gets empty ones: a plain full forward pass.

Besides KServe's own metrics, ``/metrics`` has ``kfp_llmops_requests_total{model_name, outcome}`` (success or error)
and ``kfp_llmops_request_seconds{model_name}`` (a histogram with buckets fine enough for small models) that the local
rollout analyses. ``--request-hook MODULE:CALLABLE`` (:mod:`kfp_llmops.serving.hooks`) runs before each request, inside
what is measured: e.g. injected faults for rehearsing a rollback.
"""

from __future__ import annotations

import argparse
import time

import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from prometheus_client import Counter, Histogram

REQUESTS = Counter("kfp_llmops_requests", "inference requests by outcome", ["model_name", "outcome"])
LATENCY = Histogram(
    "kfp_llmops_request_seconds", "inference latency", ["model_name"],
    buckets=tuple(round(0.0005 * 1.25**i, 6) for i in range(45)) + (float("inf"),),
)

_V2_TO_NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP16": np.float16, "BOOL": np.bool_}


class OnnxModel(kserve.Model):
    def __init__(self, name: str, model_path: str, *, request_hook=None, payload_log: str | None = None):
        from kfp_llmops.serving.payload_log import open_logger

        super().__init__(name)
        self.payloads = open_logger(payload_log, name)
        self.model_path = model_path
        self.session = None
        self.request_hook = request_hook

    def load(self) -> bool:
        import onnxruntime as ort

        self.session = ort.InferenceSession(self.model_path, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        start = time.perf_counter()
        event = None
        if self.payloads:  # shapes, not tensors: the logits of a long prompt are megabytes
            event = self.payloads.request({"inputs": [{"name": i.name, "shape": list(i.shape), "datatype": i.datatype}
                                                      for i in payload.inputs]})
        try:
            response = self._predict(payload)
        except Exception as exc:
            REQUESTS.labels(self.name, "error").inc()
            if self.payloads:
                self.payloads.response(event, {"error": str(exc)})
            raise
        finally:
            LATENCY.labels(self.name).observe(time.perf_counter() - start)
        REQUESTS.labels(self.name, "success").inc()
        if self.payloads:
            self.payloads.response(event, {"outputs": [{"name": o.name, "shape": list(o.shape)} for o in response.outputs]})
        return response

    def _predict(self, payload: InferRequest) -> InferResponse:
        if self.request_hook is not None:
            self.request_hook(self.name)
        expected = {i.name: i for i in self.session.get_inputs()}
        feeds = {}
        for inp in payload.inputs:
            if inp.name not in expected:
                raise kserve.errors.InvalidInput(f"unknown input {inp.name!r}; the model takes {sorted(expected)}")
            feeds[inp.name] = np.asarray(inp.as_numpy(), dtype=_onnx_numpy_type(expected[inp.name].type))
        batch = next(iter(feeds.values())).shape[0] if feeds else 1
        for name, spec in expected.items():
            if name not in feeds and name.startswith("past_key_values."):
                _, heads, _, dim = spec.shape
                feeds[name] = np.zeros((batch, heads, 0, dim), np.float32)
        missing = sorted(set(expected) - set(feeds))
        if missing:
            raise kserve.errors.InvalidInput(f"missing inputs {missing}")
        names = [o.name for o in self.session.get_outputs()]
        if payload.request_outputs:  # as Triton does: only the outputs asked for (the KV cache is large)
            asked = [o.name for o in payload.request_outputs]
            unknown = sorted(set(asked) - set(names))
            if unknown:
                raise kserve.errors.InvalidInput(f"unknown outputs {unknown}; the model has {names}")
            names = asked
        results = self.session.run(names, feeds)
        outputs = [
            InferOutput(name=n, shape=list(r.shape), datatype="FP32", data=r.astype(np.float32))
            for n, r in zip(names, results)
        ]
        return InferResponse(
            response_id=payload.id or "", model_name=self.name, infer_outputs=outputs, use_binary_outputs=payload.use_binary_outputs
        )


def _onnx_numpy_type(onnx_type: str):
    return {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}.get(onnx_type, np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", help="a Triton model repository: serve every model in it")
    parser.add_argument("--model-name")
    parser.add_argument("--model-path")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--request-hook", default="", metavar="MODULE:CALLABLE",
                        help="called with the served name before each request (e.g. injected faults for a rehearsal)")
    parser.add_argument("--payload-log", help="append each request and response as CloudEvents (KServe's payload "
                                              "logger format) to this JSONL file")
    args = parser.parse_args(argv)
    from kfp_llmops.errors import UserInputError
    from kfp_llmops.serving.hooks import load_request_hook

    try:
        options = {"request_hook": load_request_hook(args.request_hook), "payload_log": args.payload_log}
    except UserInputError as exc:
        parser.exit(2, f"onnx_server: {exc}\n")
    if args.model_repository:
        from kfp_llmops.serving.triton_repository import find_models

        found = find_models(args.model_repository)
        if not found:
            parser.error(f"no <model>/<version>/model.onnx in {args.model_repository}")
        models = [OnnxModel(name, str(path), **options) for name, path in found.items()]
    elif args.model_name and args.model_path:
        models = [OnnxModel(args.model_name, args.model_path, **options)]
    else:
        parser.error("give --model-repository, or --model-name and --model-path")
    for model in models:
        model.load()
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start(models)


if __name__ == "__main__":
    main()
