"""Local serving in a child process: our KServe ModelServer over a Triton repository (``onnx``:
``kfp_llmops.serving.onnx_server``, protocol v2) or a merged Hugging Face folder (``hf``:
``kfp_llmops.serving.hf_server``, the OpenAI-compatible routes of KServe's Hugging Face runtime), and their clients.

``local_server`` starts one on a free localhost port, waits until the model is ready and always stops it (no stray
processes or ports); ``infer_logits`` calls the v2 server with ``tritonclient.http``; ``chat_completion`` calls the
OpenAI-compatible one.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

from kfp_llmops.errors import UserInputError


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(model_name: str, model_repository: str | Path, *, timeout_s: float = 60.0,
                 log_path: str | Path | None = None, extra_args: list[str] | tuple[str, ...] = (),
                 serving_format: str = "onnx"):
    """Runs the server of ``serving_format`` (``onnx``: a Triton model repository; ``hf``: a merged model folder;
    ``adapter``: a base model, served as ``model_name``, for the adapters that ``extra_args`` name with
    ``--adapter NAME DIR``) on a free localhost port; yields ``host:port`` once ``model_name`` is ready. ``extra_args``
    go to the server (e.g. ``--fail-every 5``)."""
    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    if serving_format in ("hf", "adapter"):
        cmd = [sys.executable, "-m", "kfp_llmops.serving.hf_server", "--model-name", model_name,
               "--model-dir" if serving_format == "hf" else "--base-model", str(model_repository),
               "--http-port", str(port), *extra_args]
    else:
        cmd = [sys.executable, "-m", "kfp_llmops.serving.onnx_server", "--model-repository", str(model_repository),
               "--http-port", str(port), *extra_args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise UserInputError(f"the model server exited with code {proc.returncode} before it was ready"
                                     + (f"; see {log_path}" if log_path else ""))
            with contextlib.suppress(Exception):
                if is_ready(url, model_name):
                    break
            if time.monotonic() > deadline:
                raise UserInputError(f"the model server was not ready within {timeout_s:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


def is_ready(url: str, model_name: str) -> bool:
    """The v2 readiness route, which both servers (and KServe's runtimes) answer."""
    import requests

    return requests.get(f"http://{url}/v2/models/{model_name}/ready", timeout=5).status_code == 200


def chat_completion(url: str, model_name: str, messages: list[dict], *, max_tokens: int = 32) -> dict:
    """``POST /openai/v1/chat/completions`` (greedy); raises on an HTTP error."""
    import requests

    base = url if "://" in url else f"http://{url}"  # host:port, or a service URL (KServe's status.url)
    response = requests.post(f"{base}/openai/v1/chat/completions", timeout=60,
                             json={"model": model_name, "messages": messages, "max_tokens": max_tokens, "temperature": 0})
    response.raise_for_status()
    return response.json()


def infer_logits(url: str, model_name: str, input_ids, attention_mask, *, binary: bool = True):
    """Calls the v2 ``infer`` endpoint with ``tritonclient.http`` and returns the logits as numpy."""
    import numpy as np
    import tritonclient.http as http

    client = http.InferenceServerClient(url=url.split("://", 1)[-1].rstrip("/"), ssl=url.startswith("https://"))
    inputs = []
    for name, arr in (("input_ids", input_ids), ("attention_mask", attention_mask)):
        arr = np.asarray(arr, dtype=np.int64)
        inp = http.InferInput(name, list(arr.shape), "INT64")
        inp.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(inp)
    headers = None if binary else {"Content-Type": "application/json"}
    outputs = [http.InferRequestedOutput("logits", binary_data=binary)]
    return client.infer(model_name, inputs, outputs=outputs, headers=headers).as_numpy("logits")
