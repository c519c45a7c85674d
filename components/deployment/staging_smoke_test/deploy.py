"""Deploying the candidate on a staging target and calling it the way production clients do.

``staged(...)`` is a context manager yielding ``(call, where)``: ``call(request)`` returns the served model's answer
(logits through tritonclient for ``onnx``, the reply text of an OpenAI-compatible chat call for ``hf``; Vertex AI's
``rawPredict`` with Triton's redirect header), ``where`` says what was called.
"""

from __future__ import annotations

import contextlib
import time

from kfp_llmops.artifacts import CHAT_FORMATS
from kfp_llmops.components.deployment.staging_smoke_test.core import Golden, StagingConfig
from kfp_llmops.errors import ConfigError, UserInputError


def golden_prompts(eval_path: str, model_dir: str, serving_format: str, count: int) -> list[Golden]:
    """The first ``count`` evaluation records as requests in the served model's format, with their references."""
    from kfp_llmops.deployment.requests import replay_messages, replay_requests
    from kfp_llmops.datasets import read_jsonl, records
    from kfp_llmops.prompts import split_reference

    references = [split_reference(item)[1] for item in records(read_jsonl(eval_path))[:count]]
    requests = (replay_messages(eval_path, limit=count) if serving_format in CHAT_FORMATS
                else replay_requests(eval_path, model_dir, limit=count))
    return [Golden(r, ref) for r, ref in zip(requests, references)]


@contextlib.contextmanager
def staged(cfg: StagingConfig, *, serving_format: str, model_dir: str, model_name: str, storage_uri: str,
           digest: str = "", resource: str = "", api=None, vertex_client=None, vertex_api_endpoint: str | None = None,
           sleep=time.sleep, clock=time.monotonic, log=print, adapter=None):
    """``adapter`` (``serving_format: adapter``): the adapter's typed metadata, naming the base it is served on."""
    from kfp_llmops.deployment.mirror import answer

    if serving_format == "adapter" and adapter is None:
        raise ConfigError("staging an adapter needs its metadata (kfp_llmops.LoraAdapter: the base it is served on)")
    if cfg.target == "local":
        from kfp_llmops.modeling import base_reference
        from kfp_llmops.serving.local import local_server

        if serving_format == "adapter":  # the base once, the adapter under the registered name
            server = local_server(f"{model_name}-base", base_reference(adapter.base_model, adapter.base_model_revision),
                                  serving_format="adapter", extra_args=["--adapter", model_name, model_dir])
        else:
            server = local_server(model_name, model_dir, serving_format=serving_format)
        with server as url:
            yield (lambda request: answer(serving_format, url, model_name, request)), f"local server {url}"
    elif cfg.target == "kserve":
        if api is None:  # the rollout ServiceAccount's token, as the rollout step uses it
            from kfp_llmops.deployment.kserve import kubernetes_api

            api = kubernetes_api()
        name = cfg.inference_service or f"{model_name}-staging"
        url = apply_inference_service(api, name, cfg.namespace, storage_uri, digest, serving_format, model_name,
                                      deadline_s=cfg.progress_deadline_s, sleep=sleep, clock=clock, log=log,
                                      adapter=adapter)
        yield (lambda request: answer(serving_format, url, model_name, request)), f"InferenceService {cfg.namespace}/{name} at {url}"
    elif cfg.target == "vertex":
        if serving_format != "onnx":
            from kfp_llmops.deployment.vertex import VERTEX_ONNX_ONLY

            raise ConfigError("staging: " + VERTEX_ONNX_ONLY.format(serving_format=serving_format))
        if not resource:
            raise ConfigError("the vertex staging target needs a model registered in the Vertex AI Model Registry "
                              "(registry_uri vertex://projects/P/locations/L)")
        if vertex_client is None:
            from google.cloud import aiplatform_v1

            from kfp_llmops.vertex_api import gapic_client

            vertex_client = gapic_client(aiplatform_v1.EndpointServiceClient, cfg.vertex_endpoint.split("/")[3],
                                         vertex_api_endpoint)
        from kfp_llmops.deployment.vertex import deploy_to_endpoint

        deployed = deploy_to_endpoint(vertex_client, cfg.vertex_endpoint, resource, deadline_s=cfg.progress_deadline_s)
        log(f"staging: {resource} deployed to {cfg.vertex_endpoint} as {deployed}")
        yield (lambda request: vertex_triton_logits(cfg.vertex_endpoint, model_name, request, vertex_api_endpoint),
               f"endpoint {cfg.vertex_endpoint}, deployed model {deployed}")
    else:
        raise ConfigError(f"unknown staging target {cfg.target!r}")


# --- kserve ----------------------------------------------------------------------------------------------------------

def apply_inference_service(api, name: str, namespace: str, storage_uri: str, digest: str, serving_format: str,
                            model_name: str, *, deadline_s: float, sleep=time.sleep, clock=time.monotonic, log=print,
                            adapter=None) -> str:
    """Creates the staging InferenceService, or points the existing one at ``storage_uri``; waits until the revision
    serving this ``digest`` is ready; returns its URL (the cluster-local address when KServe gives one)."""
    from kubernetes.client.exceptions import ApiException

    from kfp_llmops.deployment.kserve import (DIGEST_ANNOTATION, GROUP, PLURAL, VERSION,
                                                                       adapter_args, is_ready, render_inference_service)

    where = f"InferenceService {namespace}/{name}"
    args = (adapter_args(model_name, adapter.base_model, adapter.base_model_revision, adapter.rank)
            if serving_format == "adapter" else None)
    manifest = render_inference_service(name, namespace, storage_uri, serving_format=serving_format,
                                        labels={"kfp-llmops/stage": "staging"},
                                        annotations={DIGEST_ANNOTATION: digest} if digest else None, args=args)
    if serving_format == "hf":  # the served model name is the registered one, whatever the staging service is called
        manifest["spec"]["predictor"]["model"]["args"] = [f"--model_name={model_name}"]
    try:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            patch = {"metadata": {"annotations": manifest["metadata"].get("annotations", {})},
                     "spec": {"predictor": {"model": {"storageUri": storage_uri, **({"args": args} if args else {})}}}}
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
            log(f"staging: {where} now serves {storage_uri}")
        except ApiException as exc:
            if exc.status != 404:
                raise
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
            log(f"staging: {where} created for {storage_uri}")
    except ApiException as exc:
        raise UserInputError(f"staging: {where} could not be applied: {exc.status} {exc.reason} (does the rollout "
                             f"ServiceAccount have manifests/staging-rbac.yaml in {namespace}?)") from None
    deadline = clock() + deadline_s
    while True:
        isvc = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        annotations = (isvc.get("metadata") or {}).get("annotations") or {}
        status = isvc.get("status") or {}
        url = ((status.get("address") or {}).get("url")) or status.get("url")
        if is_ready(isvc) and url and (not digest or annotations.get(DIGEST_ANNOTATION) == digest):
            return url
        if clock() >= deadline:
            conditions = [f"{c.get('type')}={c.get('status')}" for c in status.get("conditions", [])]
            raise UserInputError(f"staging: {where} was not ready within {deadline_s:.0f} s (conditions: "
                                 f"{', '.join(conditions) or 'none'})")
        sleep(5.0)


# --- vertex ----------------------------------------------------------------------------------------------------------

def vertex_triton_logits(endpoint: str, model_name: str, request, api_endpoint: str | None = None):
    """``rawPredict`` on the endpoint with a protocol-v2 body, routed to Triton's ``infer`` by Vertex AI's
    ``X-Vertex-Ai-Triton-Redirect`` header, as Vertex AI's Triton integration expects; returns the logits."""
    import numpy as np
    import tritonclient.http as http

    inputs = []
    for name, arr in zip(("input_ids", "attention_mask"), request):
        arr = np.asarray(arr, dtype=np.int64)
        item = http.InferInput(name, list(arr.shape), "INT64")
        item.set_data_from_numpy(arr, binary_data=False)
        inputs.append(item)
    body, _ = http.InferenceServerClient.generate_request_body(
        inputs, outputs=[http.InferRequestedOutput("logits", binary_data=False)])
    headers = {"Content-Type": "application/json", "X-Vertex-Ai-Triton-Redirect": f"v2/models/{model_name}/infer"}
    location = endpoint.split("/")[3]
    base = api_endpoint or f"https://{location}-aiplatform.googleapis.com"
    session = _session(base)
    response = session.post(f"{base}/v1/{endpoint}:rawPredict", data=body, headers=headers, timeout=120)
    if response.status_code != 200:
        raise UserInputError(f"rawPredict on {endpoint}: HTTP {response.status_code} {response.text[:300]}")
    result = http.InferenceServerClient.parse_response_body(response.content)
    return result.as_numpy("logits")


def _session(base: str):
    """An authorized session (application default credentials) for Google's API; a plain one for an ``http://``
    emulator (the recording server of the tests)."""
    import requests

    if base.startswith("http://"):
        return requests.Session()
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)

