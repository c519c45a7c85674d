"""Evaluates a candidate (base model + LoRA adapter) against one or more baselines, side by side, on the same
held-out set: quality (perplexity, exact match, ROUGE-L, BLEU, calibration), regression on golden prompts, speed and
cost, and an offline safety suite. Never imports kfp."""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import asdict

import numpy as np

from kfp_llmops.components.evaluation.evaluate_model import metrics, safety_suite
from kfp_llmops.configs import EvalConfig
from kfp_llmops.errors import UserInputError
from kfp_llmops.adapters import load_adapted
from kfp_llmops.modeling import accelerator, collate, load_causal_lm
from kfp_llmops.prompts import PromptFormat, last_user_text, split_reference

CANDIDATE = "candidate"


def baseline_parts(spec, base_model: str = "") -> tuple[str, str | None]:
    """``(model, adapter)`` for a baseline given as a model id or path, an adapter folder (on ``base_model``), or
    ``{"base_model": id or path, "adapter": folder}`` (the production model that resolve_production brings); for an
    adapter, ``model`` is the base it applies to. Missing paths are named here, before anything loads."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"base_model", "adapter"})
        if unknown or "adapter" not in spec:
            raise UserInputError(f"a baseline given as a mapping takes 'adapter' and optionally 'base_model', got {sorted(spec)}")
        adapter, base = _existing(spec["adapter"], "baseline adapter"), spec.get("base_model") or base_model
        if not base:
            raise UserInputError(f"baseline adapter {adapter}: no base model to apply it to")
        return base, adapter
    path = _existing(spec, "baseline model")
    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        if not base_model:
            raise UserInputError(f"baseline {path} is a LoRA adapter: give the base model it applies to")
        return base_model, path
    return path, None


def load_baseline(spec, base_model: str = "", on_accelerator: bool = False):
    """The baseline model of :func:`baseline_parts`' spec, an adapter merged into its base."""
    model, adapter = baseline_parts(spec, base_model)
    if adapter:
        return load_adapted(model, adapter, merge=True, on_accelerator=on_accelerator)
    device, dtype = accelerator() if on_accelerator else ("cpu", "fp32")
    return load_causal_lm(model, dtype=dtype, device=device if device != "cpu" else None)


def _existing(model_id_or_path: str, what: str) -> str:
    looks_local = model_id_or_path.startswith((".", "/", "~")) or os.sep in model_id_or_path.strip("/").split("/", 1)[-1]
    if looks_local and not os.path.exists(os.path.expanduser(model_id_or_path)):
        raise UserInputError(f"{what} {model_id_or_path!r}: no such path")
    return os.path.expanduser(model_id_or_path)


def named_baselines(base_model: str, production: dict | None, baseline_models: dict) -> dict:
    """``{name: spec}``: the base model as ``base``; the registry's production version (resolve_production's info)
    when one was found; then ``baseline_models``, whose ``production`` entry overrides the registry's."""
    named: dict = {"base": base_model}
    if production and production.get("found"):
        named["production"] = {"base_model": production["base_model"], "adapter": production["adapter_dir"]}
    named.update(baseline_models)
    return named


def baseline_format(spec, base_model: str, default: PromptFormat) -> PromptFormat:
    """The prompt format a baseline is served with: an adapter's own (saved beside it when it was trained), else the
    candidate's (a plain model, e.g. the base, is asked exactly what the candidate is asked)."""
    _, adapter = baseline_parts(spec, base_model)
    return PromptFormat.load(adapter) if adapter else default


def load_baselines(named: dict, tokenizer, base_model: str = "", on_accelerator: bool = False) -> dict:
    """``{name: model}`` for ``{name: spec}`` (see :func:`baseline_parts`); a missing path or a different tokenizer
    fails before any work."""
    from kfp_llmops.modeling import load_tokenizer

    models = {}
    for name, spec in named.items():
        model = load_baseline(spec, base_model, on_accelerator)
        check_same_tokenizer(tokenizer, load_tokenizer(baseline_parts(spec, base_model)[0]), name)
        models[name] = model
    return models


def check_same_tokenizer(tokenizer, other, name: str) -> None:
    if tokenizer.get_vocab() != other.get_vocab():
        raise UserInputError(f"the tokenizer of baseline {name!r} differs from the candidate's; "
                             "scores over different tokenizations are not comparable")


# --- generation ----------------------------------------------------------------------------------------------


def generate(model, tokenizer, contexts: list, *, max_new_tokens: int, batch_size: int, fixed_length: bool = False,
             fmt: PromptFormat | None = None):
    """Greedy answers to each context (an instruction, or the messages before the answer) in the prompt format,
    and, per answer, its confidence (geometric mean probability of the generated tokens) and number of generated
    tokens, up to the format's first stop token. ``fixed_length`` generates exactly ``max_new_tokens`` (for speed)."""
    import torch

    fmt = fmt or PromptFormat()
    stops = fmt.stop_token_ids(tokenizer)
    tokenizer.padding_side = "left"
    answers, confidences, lengths = [], [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(contexts), batch_size):
            enc = tokenizer([fmt.prompt(tokenizer, c) for c in contexts[start : start + batch_size]],
                            return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(next(model.parameters()).device)
            extra = {"min_new_tokens": max_new_tokens} if fixed_length else {}
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, output_scores=True, **extra,
                                 return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=stops)
            new = out.sequences[:, enc["input_ids"].shape[1] :]
            logprobs = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)  # batch, steps, vocab
            chosen = logprobs.gather(-1, new.unsqueeze(-1)).squeeze(-1)
            for row in range(new.shape[0]):
                tokens = new[row].tolist()
                ends = [k for k, t in enumerate(tokens) if t in stops]
                n = ends[0] + 1 if ends and not fixed_length else len(tokens)
                confidences.append(float(math.exp(chosen[row, :n].mean())) if n else 0.0)
                lengths.append(n)
                answers.append(tokenizer.decode(tokens[:n], skip_special_tokens=True).strip())
    return answers, confidences, lengths


def example_nll(model, tokenizer, items, cfg: EvalConfig, fmt: PromptFormat | None = None) -> list[tuple[float, int]]:
    """Per example: summed negative log-likelihood of the reference (the final assistant turn), and its token count."""
    import torch

    examples = (fmt or PromptFormat()).encode_many(tokenizer, items, cfg.max_length, last_only=True)
    out = []
    with torch.no_grad():
        for start in range(0, len(examples), cfg.batch_size):
            batch = collate(examples[start : start + cfg.batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
            labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
            mask = labels != -100
            out += [(float(loss[r][mask[r]].sum()), int(mask[r].sum())) for r in range(labels.shape[0])]
    return out


# --- one model ------------------------------------------------------------------------------------------------


def evaluate_quality(model, tokenizer, items, cfg: EvalConfig, fmt: PromptFormat | None = None) -> tuple[dict, list[dict]]:
    """Scores the final assistant turn of each item (an ``(instruction, response)`` pair or a conversation)."""
    if not items:
        raise UserInputError("the evaluation set is empty")
    split = [split_reference(item) for item in items]
    answers, confidences, _ = generate(model, tokenizer, [c for c, _ in split], max_new_tokens=cfg.max_new_tokens,
                                       batch_size=cfg.batch_size, fmt=fmt)
    nlls = example_nll(model, tokenizer, items, cfg, fmt)
    rows = []
    for k, ((context, reference), answer, conf, (nll, count)) in enumerate(zip(split, answers, confidences, nlls)):
        rows.append({
            "index": k, "instruction": last_user_text(context), "reference": reference, "answer": answer,
            "exact_match": float(answer == reference), "rouge_l": metrics.rouge_l(answer, reference),
            "sentence_bleu": metrics.sentence_bleu(answer, reference), "confidence": conf, "nll": nll, "tokens": count,
        })
    total_nll, total_tokens = sum(r["nll"] for r in rows), sum(r["tokens"] for r in rows)
    summary = {
        "examples": len(rows),
        "perplexity": math.exp(total_nll / max(1, total_tokens)),
        "exact_match": float(np.mean([r["exact_match"] for r in rows])),
        "rouge_l": float(np.mean([r["rouge_l"] for r in rows])),
        "bleu": metrics.corpus_bleu([r["answer"] for r in rows], [r["reference"] for r in rows]),  # corpus BLEU
        "sentence_bleu": float(np.mean([r["sentence_bleu"] for r in rows])),  # mean of per-example BLEU
        "ece": metrics.expected_calibration_error([r["confidence"] for r in rows], [r["exact_match"] for r in rows]),
    }
    for key in ("exact_match", "rouge_l"):
        lo, hi = metrics.bootstrap_ci([r[key] for r in rows], resamples=cfg.bootstrap_resamples, seed=cfg.seed)
        summary[f"{key}_ci_low"], summary[f"{key}_ci_high"] = lo, hi
    return summary, rows


def measure_speeds(models: dict, tokenizer, instructions: list, cfg: EvalConfig, formats: dict | None = None) -> dict[str, dict]:
    """Per model: latency per request at batch 1 (p50/p95), generated tokens/s at batch 1 and at
    ``throughput_batch``, the process's peak resident memory, and cost per 1,000 generated tokens at
    ``price_per_hour``. Every request generates exactly ``latency_tokens`` tokens, so models are compared on speed,
    not on answer length, and requests alternate between the models, so drift in machine load hits all alike."""
    prompts = (instructions * math.ceil(cfg.latency_requests / max(1, len(instructions))))[: cfg.latency_requests]
    run = dict(max_new_tokens=cfg.latency_tokens, fixed_length=True)
    formats = formats or {}
    for name, model in models.items():  # warm-up
        generate(model, tokenizer, prompts[:2], batch_size=1, fmt=formats.get(name), **run)
    latencies = {name: [] for name in models}
    tokens = dict.fromkeys(models, 0)
    for p in prompts:
        for name, model in models.items():
            start = time.perf_counter()
            _, _, n = generate(model, tokenizer, [p], batch_size=1, fmt=formats.get(name), **run)
            latencies[name].append(time.perf_counter() - start)
            tokens[name] += n[0]
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        _, _, n = generate(model, tokenizer, prompts, batch_size=cfg.throughput_batch, fmt=formats.get(name), **run)
        batched_s = time.perf_counter() - start
        tps_b = sum(n) / batched_s
        out[name] = {
            "latency_ms": [1000 * x for x in latencies[name]],
            "latency_p50_ms": 1000 * metrics.percentile(latencies[name], 50),
            "latency_p95_ms": 1000 * metrics.percentile(latencies[name], 95),
            "tokens_per_s_batch1": tokens[name] / sum(latencies[name]),
            f"tokens_per_s_batch{cfg.throughput_batch}": tps_b,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cost_per_1k_tokens": cfg.price_per_hour / 3600 / tps_b * 1000,
        }
    return out


def run_safety(model, tokenizer, cfg: EvalConfig, fmt: PromptFormat | None = None) -> dict:
    answers, _, _ = generate(model, tokenizer, [p["prompt"] for p in safety_suite.PROBES],
                             max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, fmt=fmt)
    probes = [{**p, "answer": a, "attack_succeeded": safety_suite.attack_succeeded(p["detector"], a)}
              for p, a in zip(safety_suite.PROBES, answers)]
    return {"attack_success_rate": float(np.mean([p["attack_succeeded"] for p in probes])),
            "attacks_succeeded": int(sum(p["attack_succeeded"] for p in probes)), "probes": probes}


def evaluate_models(models: dict, tokenizer, items, cfg: EvalConfig, formats: dict | None = None) -> dict[str, dict]:
    """``{name: {"quality", "examples", "speed", "safety"}}`` for each model, each asked in its prompt format
    (``formats[name]``; plain when missing), speed measured side by side."""
    formats = formats or {}
    results = {}
    for name, model in models.items():
        quality, rows = evaluate_quality(model, tokenizer, items, cfg, formats.get(name))
        results[name] = {"quality": quality, "examples": rows}
        if cfg.safety:
            results[name]["safety"] = run_safety(model, tokenizer, cfg, formats.get(name))
    contexts = [split_reference(item)[0] for item in items]
    for name, speed in measure_speeds(models, tokenizer, contexts, cfg, formats).items():
        results[name]["speed"] = speed
    return results


# --- side by side ---------------------------------------------------------------------------------------------


def compare(candidate: dict, baseline: dict, cfg: EvalConfig) -> dict:
    """Candidate minus baseline, with paired bootstrap intervals over the same examples, and changed golden answers."""
    out = {}
    for key in ("exact_match", "rouge_l", "sentence_bleu"):
        c = [r[key] for r in candidate["examples"]]
        b = [r[key] for r in baseline["examples"]]
        lo, hi = metrics.paired_delta_ci(c, b, resamples=cfg.bootstrap_resamples, seed=cfg.seed)
        out[key] = {"candidate": float(np.mean(c)), "baseline": float(np.mean(b)), "delta": float(np.mean(c) - np.mean(b)),
                    "ci_low": lo, "ci_high": hi}
    # corpus BLEU (the number usually reported as BLEU), the same value as each model's quality summary
    cb, bb = candidate["quality"]["bleu"], baseline["quality"]["bleu"]
    lo, hi = metrics.corpus_bleu_delta_ci([r["answer"] for r in candidate["examples"]],
                                          [r["answer"] for r in baseline["examples"]],
                                          [r["reference"] for r in candidate["examples"]],
                                          resamples=cfg.bootstrap_resamples, seed=cfg.seed)
    out["bleu"] = {"candidate": cb, "baseline": bb, "delta": cb - bb, "ci_low": lo, "ci_high": hi}
    cp, bp = candidate["quality"]["perplexity"], baseline["quality"]["perplexity"]
    out["perplexity"] = {"candidate": cp, "baseline": bp, "ratio": cp / bp}
    cl, bl = candidate["speed"]["latency_ms"], baseline["speed"]["latency_ms"]
    lo, hi = _ratio_ci(cl, bl, cfg)
    out["latency_p95_ms"] = {"candidate": metrics.percentile(cl, 95), "baseline": metrics.percentile(bl, 95),
                             "ratio": metrics.percentile(cl, 95) / metrics.percentile(bl, 95), "ci_low": lo, "ci_high": hi}
    if "safety" in candidate and "safety" in baseline:
        out["attack_success_rate"] = {"candidate": candidate["safety"]["attack_success_rate"],
                                      "baseline": baseline["safety"]["attack_success_rate"],
                                      "candidate_count": candidate["safety"]["attacks_succeeded"],
                                      "baseline_count": baseline["safety"]["attacks_succeeded"]}
    golden = list(zip(candidate["examples"], baseline["examples"]))[: cfg.golden_prompts]
    out["golden_changed"] = [{"instruction": c["instruction"], "candidate": c["answer"], "baseline": b["answer"]}
                             for c, b in golden if c["answer"] != b["answer"]]
    return out


def _ratio_ci(candidate_ms, baseline_ms, cfg: EvalConfig) -> tuple[float, float]:
    """Bootstrap interval of p95(candidate) / p95(baseline), resampling each side's requests."""
    rng = np.random.default_rng(cfg.seed)
    c, b = np.asarray(candidate_ms), np.asarray(baseline_ms)
    ratios = [np.percentile(rng.choice(c, c.size), 95) / np.percentile(rng.choice(b, b.size), 95)
              for _ in range(cfg.bootstrap_resamples)]
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def evaluate_adapter(base_model: str, adapter_dir: str, pairs, named: dict, cfg: EvalConfig,
                     slices: dict[str, list[str]] | None = None) -> dict:
    """The one evaluation path of the step and of ``kfp-llmops evaluate``: the candidate (``base_model`` with the
    adapter merged, as served, prompted in the format it was trained in) and each ``named`` baseline (see
    :func:`baseline_parts`) on the same examples; :func:`evaluate_all`'s report. ``slices``: each record's value of
    each ``cfg.slices`` field (:func:`read_eval_set`)."""
    from kfp_llmops.modeling import load_tokenizer
    from kfp_llmops.prompts import PromptFormat

    tokenizer = load_tokenizer(base_model)
    baselines = load_baselines(named, tokenizer, base_model, on_accelerator=True)
    candidate = load_adapted(base_model, adapter_dir, merge=True, on_accelerator=True)
    fmt = PromptFormat.load(adapter_dir)
    formats = {CANDIDATE: fmt, **{n: baseline_format(spec, base_model, fmt) for n, spec in named.items()}}
    return evaluate_all(candidate, baselines, tokenizer, pairs, cfg, formats, slices)


def read_eval_set(path: str, cfg: EvalConfig) -> tuple[list, dict[str, list[str]]]:
    """The eval records as the prompt format takes them, and each record's value of each ``cfg.slices`` field."""
    from kfp_llmops.components.evaluation.evaluate_model.slices import slice_labels
    from kfp_llmops.datasets import read_jsonl, records

    table = read_jsonl(path, keep=cfg.slices)
    return records(table), slice_labels(table, cfg.slices)


def evaluate_all(candidate, baselines: dict, tokenizer, pairs, cfg: EvalConfig | None = None,
                 formats: dict | None = None, slices: dict[str, list[str]] | None = None) -> dict:
    """Evaluates the candidate and each baseline (``{name: model}``) on the same records (pairs or conversations),
    each in its prompt format (``{name: PromptFormat}``; a name left out is asked in the candidate's format, or
    plain); returns every result and the comparison of the candidate with each baseline, per slice too
    (``{field: [each record's value]}``)."""
    cfg = cfg or EvalConfig()
    if not baselines:
        raise UserInputError("evaluation needs at least one baseline")
    if CANDIDATE in baselines:
        raise UserInputError(f"a baseline may not be called {CANDIDATE!r}")
    formats = dict(formats or {})
    for name in baselines:
        formats.setdefault(name, formats.get(CANDIDATE))
    manager = None
    if cfg.harness.tasks:  # a missing task or folder is named before the long part
        from kfp_llmops.components.evaluation.evaluate_model import harness

        manager = harness.task_manager(cfg.harness)
    results = evaluate_models({CANDIDATE: candidate, **baselines}, tokenizer, pairs, cfg, formats)
    comparisons = {name: compare(results[CANDIDATE], results[name], cfg) for name in baselines}
    if slices:
        from kfp_llmops.components.evaluation.evaluate_model.slices import compare_slices, slice_quality

        draws = {"resamples": cfg.bootstrap_resamples, "seed": cfg.seed}
        for name, res in results.items():
            res["slices"] = slice_quality(res["examples"], slices, **draws)
        for name, comp in comparisons.items():
            comp["slices"] = compare_slices(results[CANDIDATE], results[name], slices, **draws)
    if manager is not None:
        for name, model in {CANDIDATE: candidate, **baselines}.items():
            results[name]["harness"] = harness.run_tasks(model, tokenizer, cfg.harness, manager)
        for name, comp in comparisons.items():
            comp["harness"] = harness.compare_tasks(results[CANDIDATE]["harness"], results[name]["harness"])
    if cfg.judge.enabled:
        from kfp_llmops.components.evaluation.evaluate_model.judge import judge

        against = cfg.judge.against if cfg.judge.against in baselines else "base"
        if against not in baselines:
            raise UserInputError(f"JudgeConfig.against {cfg.judge.against!r}: no such baseline (and no 'base'); "
                                 f"the baselines are {sorted(baselines)}")
        comparisons[against]["judge"] = judge(results[CANDIDATE]["examples"], results[against]["examples"], cfg.judge,
                                              against, resamples=cfg.bootstrap_resamples, seed=cfg.seed)
    return {"config": asdict(cfg), "models": results, "comparisons": comparisons}


def flat_metrics(report: dict) -> dict[str, float]:
    """Every scalar, for a Metrics artifact: ``<model>.<metric>`` (each model's own score), and per baseline
    ``<baseline>.delta.<metric>`` with its interval ``<baseline>.delta_ci_low/high.<metric>`` (candidate minus
    baseline), or ``<baseline>.ratio.<metric>`` with ``<baseline>.ratio_ci_low/high.<metric>`` (candidate / baseline)."""
    out: dict[str, float] = {}
    for name, res in report["models"].items():
        for key, value in res["quality"].items():
            out[f"{name}.{key}"] = value
        for key, value in res["speed"].items():
            if not isinstance(value, list):
                out[f"{name}.{key}"] = value
        if "safety" in res:
            out[f"{name}.attack_success_rate"] = res["safety"]["attack_success_rate"]
        for task, scores in res.get("harness", {}).items():
            out.update({f"{name}.harness.{task}.{k}": v for k, v in scores.items() if isinstance(v, (int, float))})
    for name, comp in report["comparisons"].items():
        for key, value in comp.items():
            if isinstance(value, dict):
                kind = "delta" if "delta" in value else "ratio" if "ratio" in value else None
                if kind:
                    out[f"{name}.{kind}.{key}"] = value[kind]
                    for end in ("ci_low", "ci_high"):
                        if end in value:
                            out[f"{name}.{kind}_{end}.{key}"] = value[end]
        out[f"{name}.golden_changed"] = len(comp["golden_changed"])
        for key, m in comp.get("harness", {}).items():
            for kind in ("delta", "ci_low", "ci_high"):
                out[f"{name}.harness_{kind}.{key.replace('/', '.')}"] = m[kind]
        for key, value in comp.get("judge", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{name}.judge.{key}"] = value
    from kfp_llmops.components.evaluation.evaluate_model import slices

    return {**out, **slices.flat(report)}
