"""Benchmark: examples evaluated per second, our batched greedy generation (the evaluation's answer step) vs a plain
``model.generate`` loop over the same examples one at a time, same model, same answers, in one run."""

from __future__ import annotations

import argparse
import sys
import time

from common import best_of, table, write_result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", default="build/demo-assets")
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from kfp_llmops.components.evaluation.evaluate_model.core import EvalConfig, generate
    from kfp_llmops.datasets import instruction_pairs, read_jsonl
    from kfp_llmops.modeling import load_causal_lm, load_tokenizer
    from kfp_llmops.prompts import PromptFormat

    model = load_causal_lm(f"{args.assets}/base-model").eval()
    tokenizer = load_tokenizer(f"{args.assets}/base-model")
    instructions = [i for i, _ in instruction_pairs(read_jsonl(f"{args.assets}/eval.jsonl"))][: args.examples]
    cfg = EvalConfig()
    fmt = PromptFormat.resolve(tokenizer)  # the tokenizer's chat template (the demo has one)
    stops = fmt.stop_token_ids(tokenizer)

    def ours():
        return generate(model, tokenizer, instructions, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                        fmt=fmt)[0]

    def plain_loop():
        answers = []
        with torch.no_grad():
            for instruction in instructions:
                enc = tokenizer(fmt.prompt(tokenizer, instruction), return_tensors="pt", add_special_tokens=False)
                out = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=stops)
                answers.append(tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        return answers

    same = sum(a == b for a, b in zip(ours(), plain_loop()))
    t_ours = best_of(ours, args.repeats)
    t_base = best_of(plain_loop, args.repeats)
    n = len(instructions)
    write_result("eval", metric="examples evaluated per second", unit="examples/s", ours=n / t_ours, baseline=n / t_base,
                 baseline_name="plain model.generate loop, one example at a time", higher_is_better=True,
                 goal="ratio > 1 (batched generation wins)",
                 details={"examples": n, "batch_size": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens,
                          "identical_answers": same, "threads": torch.get_num_threads(), "repeats": args.repeats,
                          "when": time.strftime("%Y-%m-%d")})
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
