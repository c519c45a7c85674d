"""Serves a merged Hugging Face model folder, or a base model with LoRA adapters by name, over the OpenAI-compatible
routes of KServe's Hugging Face serving runtime, with ``transformers``: the local stand-in for KServe's
``huggingface`` runtime (vLLM on a GPU cluster, ``--enable-lora``) that the demo, the tests and the ``local`` rollout
target use.

``python -m kfp_llmops.serving.hf_server --model-name llm --model-dir DIR --http-port 8080`` (a merged folder), or
``python -m kfp_llmops.serving.hf_server --model-name base --base-model ID_OR_DIR --adapter v1 DIR1 --adapter v2 DIR2``
(the base loaded once; each adapter a served model of its own, as vLLM's ``--lora-modules``; the request's ``model``
field picks one; the base answers under ``--model-name``).

Routes (as KServe's huggingfaceserver): ``POST /openai/v1/chat/completions`` (messages formatted with the served
model's prompt format: the one it was trained in; ``stream: true`` answers in server-sent events),
``POST /openai/v1/completions`` (a raw prompt), ``GET /openai/v1/models``, ``GET /v2/models/{name}/ready`` and
``GET /metrics`` with the same ``kfp_llmops_requests_total`` and ``kfp_llmops_request_seconds`` series as the ONNX
server (per served name), so the canary analysis is the same for every format. vLLM's ``POST /v1/load_lora_adapter``
(``lora_name``, ``lora_path``) and ``POST /v1/unload_lora_adapter`` (``lora_name``) add and remove adapters while the
base stays loaded. An unknown ``model`` is a 404 that names the served ones. Greedy decoding unless ``temperature`` >
0. ``--request-hook MODULE:CALLABLE`` (:mod:`kfp_llmops.serving.hooks`) runs before each request, inside what is
measured.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass


@dataclass
class Served:
    """One name a client can ask for: the loaded model itself (``adapter`` None) or one of its LoRA adapters."""

    adapter: str | None
    fmt: object  # PromptFormat
    stops: list
    path: str


class ServedModels:
    """The model a server holds and the names it answers to. Generation runs one request at a time (a small local
    server, not a batching engine), with the request's adapter active, or none for the base."""

    def __init__(self, model, tokenizer, name: str, fmt, path: str):
        self.model, self.tokenizer = model, tokenizer
        self.served = {name: Served(None, fmt, fmt.stop_token_ids(tokenizer), path)}
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self.served)

    def get(self, name: str | None) -> tuple[str, Served]:
        from fastapi import HTTPException

        name = name or next(iter(self.served))
        if name not in self.served:
            raise HTTPException(404, f"model {name!r} not found; this server has {', '.join(map(repr, self.served))}")
        return name, self.served[name]

    def add_adapter(self, name: str, path: str) -> None:
        """Loads a peft LoRA adapter folder under ``name`` beside the others (the base is not loaded again)."""
        from pathlib import Path

        from peft import PeftModel

        from kfp_llmops.errors import UserInputError
        from kfp_llmops.prompts import PromptFormat

        if name in self.served:
            raise UserInputError(f"a model named {name!r} is already served")
        if not (Path(path) / "adapter_config.json").is_file():
            raise UserInputError(f"{path}: no adapter_config.json (not a peft LoRA adapter folder)")
        fmt = PromptFormat.load(path)  # the format the adapter was trained in
        with self.lock:
            try:
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(path, adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            except (ValueError, RuntimeError, OSError, KeyError) as exc:
                raise UserInputError(f"cannot load the adapter {path} on this base: {str(exc).splitlines()[0][:300]}") from None
            self.model.eval()
        self.served[name] = Served(name, fmt, fmt.stop_token_ids(self.tokenizer), str(path))

    def remove_adapter(self, name: str) -> None:
        from kfp_llmops.errors import UserInputError

        entry = self.served.get(name)
        if entry is None or entry.adapter is None:
            raise UserInputError(f"no adapter named {name!r}; adapters: {[n for n, e in self.served.items() if e.adapter]}")
        with self.lock:
            del self.served[name]
            self.model.delete_adapter(name)

    def generate(self, entry: Served, **kwargs):
        """``model.generate`` with ``entry``'s adapter active (the base with every adapter off)."""
        import contextlib

        import torch

        with self.lock, torch.no_grad():
            if entry.adapter is not None:
                self.model.set_adapter(entry.adapter)
                off = contextlib.nullcontext()
            else:
                off = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
            with off:
                return self.model.generate(**kwargs)


def load_served(model_name: str, *, model_dir: str | None = None, base_model: str | None = None,
                adapters: list[tuple[str, str]] = (), dtype: str = "auto") -> ServedModels:
    """A merged folder under ``model_name``, or ``base_model`` under ``model_name`` with each adapter under its name."""
    from kfp_llmops.errors import UserInputError
    from kfp_llmops.modeling import accelerator, load_causal_lm, load_tokenizer
    from kfp_llmops.prompts import PromptFormat

    if bool(model_dir) == bool(base_model):
        raise UserInputError("give either a merged model folder (--model-dir) or a base model with adapters (--base-model)")
    if model_dir and adapters:
        raise UserInputError("adapters go on a base model (--base-model), not on a merged folder")
    source = model_dir or base_model
    device, auto_dtype = accelerator()
    model = load_causal_lm(source, dtype=auto_dtype if dtype == "auto" else dtype,
                           device=device if device != "cpu" else None).eval()
    tokenizer = load_tokenizer(source)
    served = ServedModels(model, tokenizer, model_name, PromptFormat.served(source, tokenizer), source)
    for name, path in adapters:
        served.add_adapter(name, path)
    return served


def build_app(model_name: str, model_dir: str | None = None, *, base_model: str | None = None,
              adapters: list[tuple[str, str]] = (), dtype: str = "auto", payload_log: str | None = None,
              request_hook: str = ""):
    import json

    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from kfp_llmops.errors import UserInputError
    from kfp_llmops.serving.onnx_server import LATENCY, REQUESTS
    from kfp_llmops.serving.hooks import load_request_hook
    from kfp_llmops.serving.payload_log import open_logger

    hook = load_request_hook(request_hook)
    payloads = open_logger(payload_log, model_name)
    models = load_served(model_name, model_dir=model_dir, base_model=base_model, adapters=adapters, dtype=dtype)
    tokenizer = models.tokenizer
    app = FastAPI(title=f"kfp-llmops hf server: {model_name}")

    @app.exception_handler(HTTPException)
    def openai_error(request, exc: HTTPException):
        """Errors in the OpenAI (and vLLM) shape, which the openai client reads its message from; ``detail`` too."""
        kinds = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}
        return JSONResponse({"error": {"message": str(exc.detail), "type": kinds.get(exc.status_code, "Error"),
                                       "code": exc.status_code}, "detail": exc.detail}, status_code=exc.status_code)

    def prepare(prompt: str, body: dict, entry: Served, name: str) -> dict:
        if hook is not None:
            try:
                hook(name)
            except Exception as exc:  # noqa: BLE001 (the hook's own failure, answered as the server's)
                raise HTTPException(500, f"request hook: {exc}") from None
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 64)
        temperature = float(body.get("temperature") or 0.0)
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(next(models.model.parameters()).device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        return {**enc, "max_new_tokens": max_tokens, "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": entry.stops, **sampling}

    def finished(new: list, entry: Served) -> tuple[list, str]:
        for k, token in enumerate(new):
            if token in entry.stops:
                return new[:k], "stop"
        return new, "length"

    def complete(prompt: str, body: dict, entry: Served, name: str) -> tuple[str, int, int, str]:
        args = prepare(prompt, body, entry, name)
        out = models.generate(entry, **args)
        prompt_tokens = args["input_ids"].shape[1]
        new, finish = finished(out[0, prompt_tokens:].tolist(), entry)
        return tokenizer.decode(new, skip_special_tokens=True).strip(), prompt_tokens, len(new), finish

    def measured(name: str, handler, body: dict):
        start = time.perf_counter()
        event = payloads.request(body) if payloads else None
        try:
            response = handler(body)
        except Exception as exc:
            REQUESTS.labels(name, "error").inc()
            if payloads:
                payloads.response(event, {"error": str(getattr(exc, "detail", exc))})
            raise
        finally:
            LATENCY.labels(name).observe(time.perf_counter() - start)
        REQUESTS.labels(name, "success").inc()
        if payloads:
            payloads.response(event, response)
        return response

    def stream_chat(name: str, entry: Served, prompt: str, body: dict):
        """Server-sent ``chat.completion.chunk`` events as tokens come (the text the non-streaming route returns,
        whitespace at both ends dropped alike), then a chunk with the finish reason and ``[DONE]``."""
        from transformers import TextIteratorStreamer

        start = time.perf_counter()
        args = prepare(prompt, body, entry, name)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict = {}

        def run():
            try:
                result["out"] = models.generate(entry, streamer=streamer, **args)
            except Exception as exc:  # reported in the stream; the iterator must still end
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        ident, created = f"chatcmpl-{time.time_ns()}", int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> str:
            return "data: " + json.dumps({"id": ident, "object": "chat.completion.chunk", "created": created,
                                          "model": name, "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}) + "\n\n"

        def events():
            yield chunk({"role": "assistant", "content": ""})
            sent, pending = False, ""
            for text in streamer:
                text = pending + text
                if not sent:
                    text = text.lstrip()
                body_text = text.rstrip()
                pending = text[len(body_text):]
                if body_text:
                    sent = True
                    yield chunk({"content": body_text})
            worker.join()
            if "error" in result:
                REQUESTS.labels(name, "error").inc()
                yield "data: " + json.dumps({"error": {"message": str(result["error"])[:300]}}) + "\n\n"
            else:
                REQUESTS.labels(name, "success").inc()
                _, finish = finished(result["out"][0, args["input_ids"].shape[1]:].tolist(), entry)
                yield chunk({}, finish)
            LATENCY.labels(name).observe(time.perf_counter() - start)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/openai/v1/chat/completions")
    def chat(body: dict):
        name, entry = models.get(body.get("model"))

        def prompt_of(body) -> str:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise HTTPException(400, "messages must be a non-empty list of {role, content}")
            return entry.fmt.prompt(tokenizer, messages)

        if body.get("stream"):
            return stream_chat(name, entry, prompt_of(body), body)

        def handle(body):
            text, prompt_tokens, tokens, finish = complete(prompt_of(body), body, entry, name)
            return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                    "model": name, "choices": [{"index": 0, "finish_reason": finish,
                                                "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                              "total_tokens": prompt_tokens + tokens}}
        return measured(name, handle, body)

    @app.post("/openai/v1/completions")
    def completions(body: dict):
        name, entry = models.get(body.get("model"))

        def handle(body):
            if not isinstance(body.get("prompt"), str):
                raise HTTPException(400, "prompt must be a string")
            text, prompt_tokens, tokens, finish = complete(body["prompt"], body, entry, name)
            return {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
                    "model": name, "choices": [{"index": 0, "text": text, "finish_reason": finish}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                              "total_tokens": prompt_tokens + tokens}}
        return measured(name, handle, body)

    @app.get("/openai/v1/models")
    def listed():
        base = models.names()[0]
        return {"object": "list", "data": [
            {"id": n, "object": "model", "owned_by": "kfp-llmops", **({"parent": base} if e.adapter else {})}
            for n, e in models.served.items()]}

    @app.post("/v1/load_lora_adapter")
    def load_adapter(body: dict):
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
            raise HTTPException(400, "lora_name and lora_path must be non-empty strings")
        try:
            models.add_adapter(name, path)
        except UserInputError as exc:
            raise HTTPException(400, str(exc)) from None
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    def unload_adapter(body: dict):
        try:
            models.remove_adapter(str(body.get("lora_name")))
        except UserInputError as exc:
            raise HTTPException(404, str(exc)) from None
        return PlainTextResponse(f"Success: LoRA adapter '{body.get('lora_name')}' removed successfully.")

    @app.get("/v2/models/{name}/ready")
    def ready(name: str):
        if name not in models.served:
            return JSONResponse({"error": f"model {name} not found"}, status_code=404)
        return {"name": name, "ready": True}

    @app.get("/metrics")
    def metrics():
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", required=True, help="the name the merged model, or the base, answers to")
    parser.add_argument("--model-dir", help="a merged model folder (merge_adapter's hf_model)")
    parser.add_argument("--base-model", help="a base model (hub id or folder), loaded once for the adapters")
    parser.add_argument("--adapter", nargs=2, action="append", default=[], metavar=("NAME", "DIR"),
                        help="a LoRA adapter folder served as NAME (repeat for more); needs --base-model")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on a GPU, fp32 on CPU), fp32, bf16 or fp16")
    parser.add_argument("--request-hook", default="", metavar="MODULE:CALLABLE",
                        help="called with the served name before each request (e.g. injected faults for a rehearsal)")
    parser.add_argument("--payload-log", help="append each request and response as CloudEvents (KServe's payload "
                                              "logger format) to this JSONL file")
    args = parser.parse_args(argv)
    from kfp_llmops.errors import UserInputError

    try:
        app = build_app(args.model_name, args.model_dir, base_model=args.base_model,
                        adapters=[tuple(a) for a in args.adapter], dtype=args.dtype, payload_log=args.payload_log,
                        request_hook=args.request_hook)
    except UserInputError as exc:
        parser.exit(2, f"hf_server: {exc}\n")
    uvicorn.run(app, host="127.0.0.1", port=args.http_port, log_level="warning")


if __name__ == "__main__":
    main()
