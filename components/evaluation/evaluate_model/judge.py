"""The pairwise judge (``eval_config.judge``): an OpenAI-compatible chat endpoint compares, per eval example, the
candidate's answer with a baseline's (production's, by default), as AutoSxS and MT-Bench do for open-ended answers
where exact match and ROUGE say little. Each pair is asked in both orders; a verdict counts as a win or a loss only
when both orders agree (MT-Bench's rule against position bias), else a tie. Win rate (ties count half) with a
bootstrap interval; with human labels, the judge's agreement with them. A judge that does not answer fails the step
with what went wrong: never a silent pass. Never imports kfp."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from kfp_llmops.components.evaluation.evaluate_model import metrics
from kfp_llmops.configs import JudgeConfig
from kfp_llmops.errors import UserInputError

VERDICT = re.compile(r"\b(A|B|tie)\b", re.IGNORECASE)
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def ask(cfg: JudgeConfig, instruction: str, answer_a: str, answer_b: str, reference: str = "") -> str:
    """``A``, ``B``, ``tie``, or ``invalid`` when the judge's reply names none of them."""
    import requests

    prompt = cfg.prompt.format(instruction=instruction, answer_a=answer_a, answer_b=answer_b, reference=reference)
    key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
    if cfg.api_key_env and not key:
        raise UserInputError(f"JudgeConfig.api_key_env names {cfg.api_key_env}, which is not set in the step's environment")
    url = cfg.url.rstrip("/") + "/chat/completions"
    try:
        response = requests.post(url, timeout=cfg.timeout_s, headers={"Authorization": f"Bearer {key}"} if key else {},
                                 json={"model": cfg.model, "messages": [{"role": "user", "content": prompt}],
                                       "max_tokens": 8, "temperature": 0})
        response.raise_for_status()
        text = response.json()["choices"][0]["message"]["content"] or ""
    except requests.RequestException as exc:
        raise UserInputError(f"the judge at {url} did not answer ({type(exc).__name__}: {exc})"[:500]
                             + "; the evaluation stops rather than pass without a judgment") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise UserInputError(f"the judge at {url} answered with no chat completion (expected choices[0].message"
                             ".content): is it an OpenAI-compatible chat endpoint?") from None
    found = VERDICT.search(text)
    return found.group(1).upper().replace("TIE", "tie") if found else "invalid"


def _as_candidate(reply: str, candidate: str) -> str:
    """The judge's ``A``/``B``/``tie`` as a win, loss or tie of the candidate, asked as answer ``candidate``."""
    return "tie" if reply not in ("A", "B") else "win" if reply == candidate else "loss"


def verdict(first: str, second: str | None) -> str:
    """``win``, ``loss`` or ``tie`` for the candidate, from the verdict with the candidate as A (``first``) and, in
    both orders, the one with the candidate as B (``second``): a win or a loss only when both agree."""
    forward = _as_candidate(first, "A")
    if second is None:
        return forward
    return forward if forward == _as_candidate(second, "B") else "tie"


def judge(candidate_rows: list[dict], baseline_rows: list[dict], cfg: JudgeConfig, against: str, *, resamples: int,
          seed: int) -> dict:
    """The candidate's win/tie/loss against ``against`` on the first ``max_examples`` eval examples, the win rate with
    its 95 % interval, how often the two orders agreed, and each verdict."""
    rows = []
    for c, b in list(zip(candidate_rows, baseline_rows))[: cfg.max_examples]:
        first = ask(cfg, c["instruction"], c["answer"], b["answer"], c["reference"])
        second = ask(cfg, c["instruction"], b["answer"], c["answer"], c["reference"]) if cfg.both_orders else None
        rows.append({"index": c["index"], "instruction": c["instruction"], "candidate": c["answer"], against: b["answer"],
                     "candidate_first": first, "candidate_second": second, "verdict": verdict(first, second)})
    scores = [SCORE[r["verdict"]] for r in rows]
    lo, hi = metrics.bootstrap_ci(scores, resamples=resamples, seed=seed)
    counts = {k: sum(r["verdict"] == k for r in rows) for k in ("win", "tie", "loss")}
    out = {"against": against, "judge": cfg.model, "examples": len(rows), "wins": counts["win"], "ties": counts["tie"],
           "losses": counts["loss"], "win_rate": float(np.mean(scores)), "ci_low": lo, "ci_high": hi,
           "invalid": sum(r["candidate_first"] == "invalid" or r["candidate_second"] == "invalid" for r in rows),
           "verdicts": rows}
    if cfg.both_orders:
        out["position_consistency"] = float(np.mean([
            _as_candidate(r["candidate_first"], "A") == _as_candidate(r["candidate_second"], "B") for r in rows]))
    if cfg.human_labels:
        out["human_agreement"], out["human_labels"] = human_agreement(cfg)
    return out


def human_agreement(cfg: JudgeConfig) -> tuple[float, int]:
    """The share of the labelled pairs (``cfg.human_labels``) on which the judge gives the person's label."""
    path = Path(cfg.human_labels)
    if not path.is_file():
        raise UserInputError(f"JudgeConfig.human_labels: no such file {path}")
    labelled = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            labelled.append((item["instruction"], item["answer_a"], item["answer_b"], str(item["label"])))
        except (ValueError, KeyError, TypeError):
            raise UserInputError(f"{path}:{n}: expected {{instruction, answer_a, answer_b, label: A|B|tie}}") from None
    if not labelled:
        raise UserInputError(f"{path}: no labelled pairs")
    agree = [ask(cfg, i, a, b).lower() == label.lower() for i, a, b, label in labelled]
    return float(np.mean(agree)), len(labelled)
