"""GPU benchmarks (``make bench-gpu``): what the CPU benchmarks cannot show, on a ~0.5B-parameter Llama-shaped random
model (the scale ladder's shape), side by side in one run, each result in the shared format as
``build/bench/<name>-gpu.json``:

- ``forward``: prefill latency at batch 1, sequence 512, and greedy decoding tokens/s (64 new tokens, batch 1 and 8):
  torch eager (bf16, SDPA) against onnxruntime's CUDA execution provider on our ONNX export, and a TensorRT engine
  built from the same export by ``build_tensorrt_engine``'s core (fp16), forward latency;
- ``train``: LoRA training real tokens/s and MFU (against the GPU's bf16 dense peak) of our trainer (bf16 autocast,
  packing) against TRL's ``SFTTrainer`` (bf16, SDPA, BFD packing), with and without Liger kernels when installed;
- ``qlora``: our trainer with the base in 4-bit NF4 (bitsandbytes): tokens/s and peak GPU memory, against bf16.

Each suite runs on its own: one that fails (a package missing, an out-of-memory) is recorded in
``build/bench/gpu-status.json`` with its error and the others still run. Without a CUDA device nothing is measured:
the status file says so (exit 0, or 3 with ``--require-gpu``). ``--device cpu --size tiny`` runs the same code on a
small model on the CPU, for the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback

from common import OUT, lora_training_flops, write_result

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def use_checkout() -> None:
    """Imports ``kfp_llmops`` from this checkout when it is not installed (a GPU machine's own Python, which has torch
    but not our dependencies): ``components/`` and ``pipelines/`` become ``kfp_llmops.components`` and
    ``kfp_llmops.pipelines``, as setup.py maps them."""
    import importlib.util

    try:
        import kfp_llmops.components  # noqa: F401
        return
    except ImportError:
        pass
    sys.path.insert(0, str(ROOT))
    import kfp_llmops  # noqa: F401

    for sub in ("components", "pipelines", "cli"):
        name = f"kfp_llmops.{sub}"
        spec = importlib.util.spec_from_file_location(name, ROOT / sub / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / sub)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)

SUITES = ("forward", "train", "qlora")
SIZES = {  # the scale ladder's ~0.5B Llama shape, and a tiny one for tests
    "0.5b": dict(hidden_size=1024, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=4),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}
VOCAB = 32000
# dense bf16 tensor-core peak per GPU (FLOP/s), from the vendors' data sheets (sparsity excluded)
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
             "T4": 65e12, "RTX 4090": 165e12}


def peak_flops(device_name: str) -> float | None:
    """The bf16 dense peak of the GPU ``device_name`` names (longest match first), or None when it is not listed."""
    for key in sorted(BF16_PEAK, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return BF16_PEAK[key]
    return None


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
    parser.add_argument("--size", default="0.5b", choices=sorted(SIZES))
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: only to test this script")
    parser.add_argument("--steps", type=int, default=20, help="training steps per trainer")
    parser.add_argument("--batch", type=int, default=8, help="training examples per step")
    parser.add_argument("--seq", type=int, default=512, help="prefill length, and the packing width in training")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--require-gpu", action="store_true", help="exit 3 when there is no CUDA device")
    args = parser.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; known: {list(SUITES)}")
    if args.steps < 1 or args.batch < 1 or args.seq < 8 or args.new_tokens < 1:
        parser.error("--steps, --batch and --new-tokens must be >= 1 and --seq >= 8")
    args.suites = suites
    return args


def model(size: str, device: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=4096, pad_token_id=0, eos_token_id=2,
                         attn_implementation="sdpa", **SIZES[size])
    built = LlamaForCausalLM(config)
    return (built.to(device=device, dtype=dtype) if dtype is not None else built).eval()


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 3) -> float:
    fn()
    sync(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def examples(n: int, seq: int, seed: int = 1):
    import random

    from kfp_llmops.examples import Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        half = min(seq // 2 - 1, max(4, int(rng.lognormvariate(math.log(seq / 6), 0.5))))
        prompt = [rng.randrange(4, VOCAB) for _ in range(half)]
        response = prompt[::-1] + [2]
        out.append(Example(prompt + response, [-100] * half + response))
    return out


# --- suites -------------------------------------------------------------------------------------------------------

def suite_forward(args, dtype, device_name: str) -> list[dict]:
    import tempfile

    import numpy as np
    import torch

    eager = model(args.size, args.device, dtype)
    params = sum(p.numel() for p in eager.parameters())
    ids = torch.full((1, args.seq), 5, device=args.device)
    results = []

    def prefill():
        with torch.no_grad():
            eager(input_ids=ids, use_cache=False)

    t_eager = timed(prefill, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        import onnxruntime as ort

        from kfp_llmops import onnx_runtime
        from kfp_llmops.components.compilation.export_onnx import core

        path = core.export(model(args.size, "cpu", torch.float32), tmp)  # our export, as export_onnx writes it
        providers = ["CUDAExecutionProvider"] if args.device == "cuda" else ["CPUExecutionProvider"]
        sess = ort.InferenceSession(str(path), providers=providers)
        if args.device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
            raise RuntimeError(f"onnxruntime has no CUDA execution provider here (has {sess.get_providers()}); "
                               "install onnxruntime-gpu")
        layout = onnx_runtime.layout_of(sess)
        feeds = {"input_ids": ids.cpu().numpy().astype(np.int64), "attention_mask": np.ones((1, args.seq), np.int64),
                 **layout.empty_past(1)}
        t_ort = timed(lambda: sess.run(["logits"], feeds), "cpu")
        results.append(write_result(
            "forward-ort-gpu", metric=f"prefill latency b1 s{args.seq}", unit="ms", ours=t_ort * 1000,
            baseline=t_eager * 1000, baseline_name=f"torch eager ({str(dtype).split('.')[-1]}, SDPA)",
            higher_is_better=False, goal="ratio >= 1 (informative: fp32 ONNX against bf16 torch)",
            details={"parameters": params, "device": device_name, "ours": "onnxruntime CUDA EP, fp32 export"}))
        if args.device == "cuda":
            results.append(tensorrt_latency(path, tmp, feeds, t_eager, params, device_name, args))
    for batch in (1, 8):
        prompt = torch.full((batch, 32), 5, device=args.device)

        def generate():
            with torch.no_grad():
                eager.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.new_tokens,
                               min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)

        seconds = timed(generate, args.device, repeats=2)
        results.append(write_result(
            f"generate-b{batch}-eager-gpu", metric=f"tokens/s, {args.new_tokens} new, batch {batch}", unit="tokens/s",
            ours=batch * args.new_tokens / seconds, baseline=batch * args.new_tokens / seconds,
            baseline_name="(the torch eager reference itself)", higher_is_better=True, goal="reference figure",
            details={"parameters": params, "device": device_name}))
    return results


def tensorrt_latency(onnx_path, tmp, feeds, t_eager, params, device_name, args) -> dict:
    import tensorrt as trt
    import torch

    from kfp_llmops.components.compilation.build_tensorrt_engine.core import TensorRTConfig, build_engine

    engine_path = f"{tmp}/model.plan"
    info = build_engine(onnx_path, engine_path, TensorRTConfig(precision="fp16", max_sequence=args.seq,
                                                               opt_sequence=args.seq))
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(open(engine_path, "rb").read())
    context = engine.create_execution_context()
    tensors = {}
    for name, value in feeds.items():
        tensors[name] = torch.as_tensor(value).cuda().contiguous()
        context.set_input_shape(name, tuple(value.shape))
        context.set_tensor_address(name, tensors[name].data_ptr())
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            shape = tuple(context.get_tensor_shape(name))
            tensors[name] = torch.empty(shape, dtype=torch.float32, device="cuda")  # the export's outputs are fp32
            context.set_tensor_address(name, tensors[name].data_ptr())
    stream = torch.cuda.Stream()

    def run():
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()

    t_trt = timed(run, "cuda")
    return write_result(
        "forward-tensorrt-gpu", metric=f"prefill latency b1 s{args.seq}", unit="ms", ours=t_trt * 1000,
        baseline=t_eager * 1000, baseline_name="torch eager (bf16, SDPA)", higher_is_better=False, goal="ratio >= 1.5",
        details={"parameters": params, "device": device_name, "engine": info})


def suite_train(args, dtype, device_name: str, peak: float | None, quantization: str = "none") -> list[dict]:
    import torch

    from kfp_llmops.components.training.train_lora.core import TrainConfig, attach_lora
    from kfp_llmops.modeling import load_causal_lm
    from kfp_llmops.training import Trainer

    data = examples(args.steps * args.batch, args.seq)
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch, warmup_steps=2, learning_rate=2e-4,
                      pack_length=args.seq, quantization=quantization, precision="bf16" if args.device == "cuda" else "fp32")
    if quantization == "nf4":
        import tempfile

        from kfp_llmops.modeling import check_quantization

        check_quantization("nf4", cuda=args.device == "cuda")  # a clear error off CUDA
        with tempfile.TemporaryDirectory() as tmp:
            model(args.size, "cpu", torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
            base = load_causal_lm(tmp, dtype="bf16", quantization="nf4")
    else:
        base = model(args.size, args.device, dtype)
    params = sum(p.numel() for p in base.parameters())
    lora = attach_lora(base, cfg)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run = Trainer(lora, cfg, pad_id=0).setup(data).train()
    sync(args.device)
    ours_tps = run.real_tokens / (time.perf_counter() - start)
    memory = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
    lengths = [len(e.input_ids) for e in data]
    flops_per_token = lora_training_flops(lora, lengths) / sum(lengths)
    mfu = (ours_tps * flops_per_token / peak) if peak else None
    if quantization == "nf4":
        return [write_result("qlora-nf4-gpu", metric="real tokens/s, QLoRA nf4", unit="tokens/s", ours=ours_tps,
                             baseline=ours_tps, baseline_name="(see train-ours-gpu for bf16)", higher_is_better=True,
                             goal="reference figure", details={"peak_memory_gib": memory, "device": device_name,
                                                               "mfu": mfu, "parameters": params})]
    results = []
    for liger in (False, True):
        try:
            trl_tps = trl_tokens_per_second(args, data, cfg, dtype, liger)
        except ImportError as exc:
            if liger:
                results.append({"name": "train-vs-trl-liger-gpu", "skipped": f"liger-kernel not installed ({exc})"})
                continue
            raise
        results.append(write_result(
            "train-vs-trl" + ("-liger" if liger else "") + "-gpu", metric="real tokens/s, LoRA r16 all-linear",
            unit="tokens/s", ours=ours_tps, baseline=trl_tps,
            baseline_name="TRL SFTTrainer (bf16, SDPA, BFD packing" + (", Liger kernels)" if liger else ")"),
            higher_is_better=True, goal="ratio >= 1.3; MFU >= 0.5 of the bf16 dense peak",
            details={"parameters": params, "device": device_name, "peak_bf16_flops": peak, "mfu_ours": mfu,
                     "mfu_baseline": (trl_tps * flops_per_token / peak) if peak else None,
                     "peak_memory_gib_ours": memory, "steps": args.steps, "batch": args.batch, "seq": args.seq}))
    return results


def trl_tokens_per_second(args, data, cfg, dtype, liger: bool) -> float:
    from kfp_llmops.components.training.train_lora.core import attach_lora
    from trl_baseline import sft_trainer

    if liger:
        import liger_kernel  # noqa: F401  (ImportError: skipped, said so)
    trainer, _ = sft_trainer(data, attach_lora(model(args.size, args.device, dtype), cfg), model("tiny", "cpu", None),
                             steps=args.steps, learning_rate=cfg.learning_rate, warmup_steps=2, max_length=args.seq,
                             output_dir="build/bench/trl-gpu", on_gpu=args.device == "cuda", liger=liger)
    sync(args.device)
    start = time.perf_counter()
    trainer.train()
    sync(args.device)
    seen = sum(len(e.input_ids) for e in data)
    return seen / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    use_checkout()
    try:
        import torch
    except ImportError:
        status = {"measured": False, "reason": f"torch is not installed in {sys.executable}: nothing was measured"}
        (OUT / "gpu-status.json").write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
        print(status["reason"])
        return 3 if args.require_gpu else 0

    status = {"suites": args.suites, "size": args.size, "device": args.device, "measured": False, "results": [],
              "errors": {}}
    if args.device == "cuda" and not torch.cuda.is_available():
        status["reason"] = "no CUDA device on this machine: nothing was measured"
        (OUT / "gpu-status.json").write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
        print(status["reason"])
        return 3 if args.require_gpu else 0
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    peak = peak_flops(device_name) if args.device == "cuda" else None
    runners = {"forward": lambda: suite_forward(args, dtype, device_name),
               "train": lambda: suite_train(args, dtype, device_name, peak),
               "qlora": lambda: suite_train(args, dtype, device_name, peak, quantization="nf4")}
    for suite in args.suites:
        start = time.perf_counter()
        try:
            for r in runners[suite]():
                status["results"].append(r.get("name"))
                print(json.dumps({k: r.get(k) for k in ("name", "ours", "baseline", "ratio", "skipped")}))
        except Exception as exc:  # noqa: BLE001 (one suite's failure is recorded; the others still run)
            status["errors"][suite] = f"{type(exc).__name__}: {exc}"[:2000]
            traceback.print_exc()
        print(f"{suite}: {time.perf_counter() - start:.1f} s", flush=True)
    status.update(measured=args.device == "cuda" and bool(status["results"]), device_name=device_name,
                  peak_bf16_flops=peak)
    (OUT / "gpu-status.json").write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    return 1 if status["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
