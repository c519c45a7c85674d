"""Serves a merged Hugging Face model folder (safetensors, tokenizer with its chat template) over the
OpenAI-compatible routes of KServe's Hugging Face serving runtime, with ``transformers``: the local stand-in for
KServe's ``huggingface`` runtime (vLLM on a GPU cluster) that the demo, the tests and the ``local`` rollout target use.

``python -m kfp_llmops.serving.hf_server --model-name llm --model-dir DIR --http-port 8080``

Routes (as KServe's huggingfaceserver): ``POST /openai/v1/chat/completions`` (messages formatted with the folder's
chat template: the prompt format the model was trained in), ``POST /openai/v1/completions`` (a raw prompt),
``GET /openai/v1/models``, ``GET /v2/models/{name}/ready`` and ``GET /metrics`` with the same
``kfp_llmops_requests_total`` and ``kfp_llmops_request_seconds`` series as the ONNX server, so the canary analysis
is the same for both formats. Greedy decoding unless ``temperature`` > 0. ``--fail-every N`` and ``--delay-ms D``
inject faults as in the ONNX server.
"""

from __future__ import annotations

import argparse
import itertools
import time


def build_app(model_name: str, model_dir: str, *, fail_every: int = 0, delay_ms: float = 0.0, dtype: str = "auto",
              payload_log: str | None = None):
    import threading

    import torch
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse, PlainTextResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from kfp_llmops.modeling import accelerator, load_causal_lm, load_tokenizer
    from kfp_llmops.prompts import PromptFormat
    from kfp_llmops.serving.onnx_server import LATENCY, REQUESTS
    from kfp_llmops.serving.payload_log import open_logger

    payloads = open_logger(payload_log, model_name)

    device, auto_dtype = accelerator()
    model = load_causal_lm(model_dir, dtype=auto_dtype if dtype == "auto" else dtype,
                           device=device if device != "cpu" else None).eval()
    tokenizer = load_tokenizer(model_dir)
    fmt = PromptFormat.served(model_dir, tokenizer)
    stops = fmt.stop_token_ids(tokenizer)
    lock = threading.Lock()  # one generation at a time: a small local server, not a batching engine
    count = itertools.count(1)
    app = FastAPI(title=f"kfp-llmops hf server: {model_name}")

    def complete(prompt: str, body: dict) -> tuple[str, int, int, str]:
        n = next(count)
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if fail_every and n % fail_every == 0:
            raise HTTPException(500, f"injected failure (request {n}, --fail-every {fail_every})")
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 64)
        temperature = float(body.get("temperature") or 0.0)
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(next(model.parameters()).device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with lock, torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=stops, **sampling)
        new = out[0, enc["input_ids"].shape[1]:].tolist()
        finish = "length"
        for k, token in enumerate(new):
            if token in stops:
                new, finish = new[:k], "stop"
                break
        return tokenizer.decode(new, skip_special_tokens=True).strip(), enc["input_ids"].shape[1], len(new), finish

    def measured(handler):
        def run(body: dict):
            if body.get("model") not in (None, model_name):
                raise HTTPException(404, f"model {body.get('model')!r} not found; this server has {model_name!r}")
            start = time.perf_counter()
            event = payloads.request(body) if payloads else None
            try:
                response = handler(body)
            except Exception as exc:
                REQUESTS.labels(model_name, "error").inc()
                if payloads:
                    payloads.response(event, {"error": str(getattr(exc, "detail", exc))})
                raise
            finally:
                LATENCY.labels(model_name).observe(time.perf_counter() - start)
            REQUESTS.labels(model_name, "success").inc()
            if payloads:
                payloads.response(event, response)
            return response
        return run

    @app.post("/openai/v1/chat/completions")
    def chat(body: dict):
        def handle(body):
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise HTTPException(400, "messages must be a non-empty list of {role, content}")
            text, prompt_tokens, tokens, finish = complete(fmt.prompt(tokenizer, messages), body)
            return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                    "model": model_name, "choices": [{"index": 0, "finish_reason": finish,
                                                      "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                              "total_tokens": prompt_tokens + tokens}}
        return measured(handle)(body)

    @app.post("/openai/v1/completions")
    def completions(body: dict):
        def handle(body):
            if not isinstance(body.get("prompt"), str):
                raise HTTPException(400, "prompt must be a string")
            text, prompt_tokens, tokens, finish = complete(body["prompt"], body)
            return {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
                    "model": model_name, "choices": [{"index": 0, "text": text, "finish_reason": finish}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                              "total_tokens": prompt_tokens + tokens}}
        return measured(handle)(body)

    @app.get("/openai/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "kfp-llmops"}]}

    @app.get("/v2/models/{name}/ready")
    def ready(name: str):
        if name != model_name:
            return JSONResponse({"error": f"model {name} not found"}, status_code=404)
        return {"name": model_name, "ready": True}

    @app.get("/metrics")
    def metrics():
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-dir", required=True, help="a merged model folder (merge_adapter's hf_model)")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on a GPU, fp32 on CPU), fp32, bf16 or fp16")
    parser.add_argument("--fail-every", type=int, default=0, help="fail every N-th request (fault injection)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay every request (fault injection)")
    parser.add_argument("--payload-log", help="append each request and response as CloudEvents (KServe's payload "
                                              "logger format) to this JSONL file")
    args = parser.parse_args(argv)
    app = build_app(args.model_name, args.model_dir, fail_every=args.fail_every, delay_ms=args.delay_ms, dtype=args.dtype,
                    payload_log=args.payload_log)
    uvicorn.run(app, host="127.0.0.1", port=args.http_port, log_level="warning")


if __name__ == "__main__":
    main()
