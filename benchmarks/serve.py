"""Benchmark: serving speed of our ONNX export against torch, same weights, side by side in one run.

1. forward latency at batch 1, sequence 32: onnxruntime vs torch eager (goal >= 3x), for the fp32 export and for its
   dynamic int8 variant (export_onnx's other candidate), with the GFLOP/s each reaches (2 x parameters x tokens);
2. generating 64 new tokens at batch 1 and batch 8: our ONNX decoder with KV cache vs ``transformers`` ``generate``
   (goal >= 1.5x), and vs onnxruntime-genai on the same weights, built by its own builder (fp32: goal >= 1.0x, for
   our default TorchScript export, the opt-in torch.export one, opset 23 with ONNX's Attention op, and the opt-in
   onnxruntime-genai one, its builder's graph made exact for left-padded batches; our int8 variant against its int4,
   for information). On the demo model and on a larger config of about 50M parameters
   (random weights: speed only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import best_of, best_of_alternating, table, write_result


def larger_model(vocab_size: int, pad_id: int, eos_id: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=640, intermediate_size=1728, num_hidden_layers=10,
                      num_attention_heads=10, num_key_value_heads=5, max_position_embeddings=512,
                      pad_token_id=pad_id, eos_token_id=eos_id, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def bench_model(label: str, model, tokenizer, repeats: int, new_tokens: int, genai: bool = True) -> list[dict]:
    import onnxruntime as ort
    import torch

    from kfp_llmops import onnx_runtime
    from kfp_llmops.components.compilation.export_onnx import core

    params = sum(p.numel() for p in model.parameters())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = core.export(model, tmp)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        layout = onnx_runtime.layout_of(sess)
        ids = np.full((1, 32), 5, np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), **layout.empty_past(1)}
        t_ids = torch.as_tensor(ids)

        def torch_forward():
            with torch.no_grad():
                model(input_ids=t_ids, attention_mask=torch.ones_like(t_ids), use_cache=False)

        sess.run(None, feeds)
        torch_forward()
        ours = best_of(lambda: sess.run(None, feeds), repeats * 10)
        theirs = best_of(torch_forward, repeats * 10)
        flop = 2 * params * ids.size
        results.append(write_result(f"serve-forward-{label}", metric="forward latency b1 s32, fp32", unit="ms", ours=ours * 1000,
                                    baseline=theirs * 1000, baseline_name="torch eager", higher_is_better=False,
                                    goal="ratio >= 3", details={"parameters": params, "threads": torch.get_num_threads(),
                                                                "gflops_ours": flop / ours / 1e9, "gflops_baseline": flop / theirs / 1e9}))
        from kfp_llmops.components.compilation.export_onnx import variants

        int8 = variants.make_variants(path, Path(tmp) / "variants")["int8-dynamic"]
        q_sess = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        q_sess.run(["logits"], feeds)
        q_ours = best_of(lambda: q_sess.run(["logits"], feeds), repeats * 10)
        results.append(write_result(f"serve-forward-int8-{label}", metric="forward latency b1 s32, int8 dynamic", unit="ms",
                                    ours=q_ours * 1000, baseline=theirs * 1000, baseline_name="torch eager (fp32)",
                                    higher_is_better=False, goal="ratio >= 3",
                                    details={"parameters": params, "size_bytes": Path(int8).stat().st_size}))
        prompts = ["reverse: apple bird cake", "sort: pen dog map", "copy: sun moon", "rotate: fox cup star",
                   "reverse: owl pear rose", "sort: zoo ink", "copy: kite lamp", "reverse: egg goat hat"]
        for batch in (1, 8):
            chosen = prompts[:batch]

            def onnx_gen():
                return onnx_runtime.onnx_greedy(sess, tokenizer, chosen, new_tokens, stop_at_eos=False)

            def hf_gen():
                tokenizer.padding_side = "left"
                enc = tokenizer(chosen, return_tensors="pt", padding=True, add_special_tokens=False)
                with torch.no_grad():
                    return model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                          pad_token_id=tokenizer.pad_token_id)

            onnx_gen(), hf_gen()
            ours = best_of(onnx_gen, repeats)
            theirs = best_of(hf_gen, repeats)
            tokens = batch * new_tokens
            results.append(write_result(f"serve-generate-b{batch}-{label}", metric=f"tokens/s, {new_tokens} new, batch {batch}",
                                        unit="tokens/s", ours=tokens / ours, baseline=tokens / theirs,
                                        baseline_name="transformers generate (KV cache, torch eager)", higher_is_better=True,
                                        goal="ratio >= 1.5", details={"parameters": params, "new_tokens": new_tokens}))
        if genai:
            dynamo = core.export(model, Path(tmp) / "torch-export", core.ExportConfig(exporter="torch.export"))
            d_sess = ort.InferenceSession(str(dynamo), options, providers=["CPUExecutionProvider"])
            built = core.export(model, Path(tmp) / "genai-export", core.ExportConfig(exporter="onnxruntime-genai"), tokenizer)
            b_sess = ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])
            ours = {"fp32": sess, "int8-dynamic": q_sess, "torch-export": d_sess, "onnxruntime-genai": b_sess}
            results += bench_genai(label, model, tokenizer, ours, Path(tmp), repeats, new_tokens)
    return results


def bench_genai(label, model, tokenizer, sessions: dict, tmp, repeats: int, new_tokens: int) -> list[dict]:
    """onnxruntime-genai (ONNX Runtime's own LLM builder and generation loop) on the same weights: its builder makes
    fp32 and int4 models from the merged Hugging Face folder, offline; each generates ``new_tokens`` tokens at batch 1
    and 8 from the same prompt ids as ours (one prompt repeated, so no padding on either side; neither side's timing
    includes tokenizing). ``sessions``: our ``fp32`` (TorchScript), ``torch-export`` (opset 23) and
    ``onnxruntime-genai`` (its builder's graph, rewritten for left-padded batches, decoded by our loop into one cache
    buffer) exports, compared with its fp32, and our ``int8-dynamic`` variant, compared with its int4."""
    import onnxruntime_genai as og

    from kfp_llmops import onnx_runtime
    from kfp_llmops.components.compilation.export_onnx import core
    from kfp_llmops.components.compilation.export_onnx.genai_builder import run_builder

    hf_dir = tmp / "hf"
    model.save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    built = {}
    for precision in ("fp32", "int4"):  # its builder's own graphs, not rewritten: og.Model reads them with genai_config
        out = run_builder(hf_dir, tmp / f"genai-{precision}", name=label, precision=precision,
                          cache_dir=tmp / "genai-cache").parent
        built[precision] = og.Model(str(out))
    prompt = "copy: sun moon kite lamp"
    ids = tokenizer([prompt], add_special_tokens=False)["input_ids"][0]
    results = []
    for batch in (1, 8):
        tokens = np.array([ids] * batch, dtype=np.int32)

        def genai(m):
            params = og.GeneratorParams(m)
            length = tokens.shape[1] + new_tokens
            params.set_search_options(max_length=length, min_length=length, batch_size=batch, do_sample=False)
            generator = og.Generator(m, params)
            generator.append_tokens(tokens)
            while not generator.is_done():
                generator.generate_next_token()

        for precision, theirs_name in (("fp32", "fp32"), ("torch-export", "fp32"), ("onnxruntime-genai", "fp32"),
                                       ("int8-dynamic", "int4")):
            ours_sess = sessions[precision]

            def ours():  # from the prompt ids, as genai's side starts
                onnx_runtime.greedy_ids(ours_sess, tokens, np.ones_like(tokens), new_tokens)

            ours(), genai(built[theirs_name])
            t_ours, t_theirs = best_of_alternating(ours, lambda: genai(built[theirs_name]), 3 * repeats)
            n = batch * new_tokens
            suffix = {"fp32": "", "torch-export": "-torch-export", "onnxruntime-genai": "-builder-export",
                      "int8-dynamic": "-quantized"}[precision]
            results.append(write_result(
                f"serve-generate-genai{suffix}-b{batch}-{label}", metric=f"tokens/s, {new_tokens} new, batch {batch}",
                unit="tokens/s", ours=n / t_ours, baseline=n / t_theirs,
                baseline_name=f"onnxruntime-genai {og.__version__} ({theirs_name}, its builder, same weights)",
                higher_is_better=True, goal="informative (int8 vs int4)" if precision == "int8-dynamic" else "ratio >= 1.0",
                details={"ours": precision, "theirs": theirs_name, "prompt_tokens": len(ids), "new_tokens": new_tokens}))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", default="build/demo-assets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-genai", action="store_true", help="leave out the onnxruntime-genai comparison")
    args = parser.parse_args(argv)

    from kfp_llmops.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(f"{args.assets}/base-model")
    bench_model("demo", load_causal_lm(f"{args.assets}/base-model").eval(), tokenizer, args.repeats, args.new_tokens,
                not args.skip_genai)
    if not args.skip_large:
        bench_model("50m", larger_model(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id), tokenizer,
                    args.repeats, args.new_tokens, not args.skip_genai)
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
