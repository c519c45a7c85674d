"""ASGI middleware for vLLM's OpenAI server (``--middleware kfp_llmops.serving.vllm_compat.kserve_paths``): the routes
under ``/openai/v1`` as KServe's Hugging Face runtime serves them, so the clients that call KServe (and our local
server) call vLLM unchanged. Imports nothing but the standard library: it runs inside vLLM's own environment, found
on ``PYTHONPATH``."""

from __future__ import annotations

PREFIX = "/openai/v1/"


async def kserve_paths(request, call_next):
    """``/openai/v1/<route>`` -> ``/v1/<route>`` (chat, completions, models); anything else as it is."""
    path = request.scope.get("path", "")
    if path.startswith(PREFIX):
        request.scope["path"] = "/v1/" + path[len(PREFIX):]
        request.scope["raw_path"] = request.scope["path"].encode()
    return await call_next(request)
