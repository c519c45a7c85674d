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
                 serving_format: str = "onnx", engine: str = "transformers"):
    """Runs the server of ``serving_format`` (``onnx``: a Triton model repository; ``hf``: a merged model folder;
    ``adapter``: a base model, served as ``model_name``, for the adapters that ``extra_args`` name with
    ``--adapter NAME DIR``) on a free localhost port; yields ``host:port`` once ``model_name`` is ready. ``extra_args``
    go to the server (e.g. ``--payload-log FILE``). ``engine`` (``hf`` and ``adapter``): ``transformers`` (our
    ``hf_server``) or ``vllm``: vLLM's OpenAI server from the Python in ``KFP_LLMOPS_VLLM_PYTHON`` (``make test-vllm``
    builds one), with the same routes (``/openai/v1``) and the adapters as ``--lora-modules``."""
    import os

    port = free_port()
    env = None
    if engine == "vllm":
        cmd, env = vllm_command(model_name, model_repository, port, extra_args, serving_format)
    elif engine != "transformers":
        raise UserInputError(f"engine must be transformers or vllm, got {engine!r}")
    elif serving_format in ("hf", "adapter"):
        cmd = [sys.executable, "-m", "kfp_llmops.serving.hf_server", "--model-name", model_name,
               "--model-dir" if serving_format == "hf" else "--base-model", str(model_repository),
               "--http-port", str(port), *extra_args]
    else:
        cmd = [sys.executable, "-m", "kfp_llmops.serving.onnx_server", "--model-repository", str(model_repository),
               "--http-port", str(port), *extra_args]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env} if env else None)
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
    """The v2 readiness route, which our servers (and KServe's runtimes) answer; for an OpenAI-compatible server
    without it (vLLM), ``model_name`` among ``/openai/v1/models``."""
    import requests

    if requests.get(f"http://{url}/v2/models/{model_name}/ready", timeout=5).status_code == 200:
        return True
    listed = requests.get(f"http://{url}/openai/v1/models", timeout=5)
    return listed.status_code == 200 and model_name in {m.get("id") for m in listed.json().get("data", [])}


VLLM_PYTHON_ENV = "KFP_LLMOPS_VLLM_PYTHON"


def vllm_command(model_name: str, model: str | Path, port: int, extra_args, serving_format: str) -> tuple[list, dict]:
    """vLLM's OpenAI server for ``hf`` (a merged folder) or ``adapter`` (the base with ``--adapter NAME DIR`` as
    ``--lora-modules NAME=DIR``), on CPU here, with the KServe routes (``vllm_compat``) on top."""
    import json
    import os

    from kfp_llmops.modeling import split_revision

    if serving_format not in ("hf", "adapter"):
        raise UserInputError(f"engine vllm serves serving_format hf or adapter, not {serving_format!r}")
    python = os.environ.get(VLLM_PYTHON_ENV)
    if not python:
        raise UserInputError(f"engine vllm needs {VLLM_PYTHON_ENV}: a Python with vLLM installed (make test-vllm builds one)")
    args, adapters = list(extra_args), []
    while "--adapter" in args:
        i = args.index("--adapter")
        adapters.append((args[i + 1], args[i + 2]))
        del args[i:i + 3]
    if args:
        raise UserInputError(f"engine vllm: {args} are options of our transformers server only")
    if adapters and serving_format != "adapter":
        raise UserInputError("adapters go on a base model (serving_format adapter)")
    name, revision = split_revision(str(model))  # the run's copy of the base, or the hub id at its commit
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", name, *(["--revision", revision] if revision else []),
           "--served-model-name", model_name, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--middleware", "kfp_llmops.serving.vllm_compat.kserve_paths"]
    if adapters:
        rank = max(json.loads((Path(d) / "adapter_config.json").read_text(encoding="utf-8"))["r"] for _, d in adapters)
        cmd += ["--enable-lora", "--max-lora-rank", str(max(8, rank)), "--max-loras", str(len(adapters)),
                "--lora-modules", *(f"{n}={d}" for n, d in adapters)]
    root = str(Path(__file__).resolve().parents[2])  # vllm_compat, importable without installing this package there
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")])),
           "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    return cmd, env


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
