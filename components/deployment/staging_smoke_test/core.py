"""Staging smoke test: the candidate deployed on a staging target and called with golden prompts through the real
client, before any production traffic moves. Never imports kfp.

Targets: ``local`` (a local model server), ``kserve`` (an InferenceService in a staging namespace, created or updated
by this step and left running, as a staging environment is), ``vertex`` (a staging endpoint: the candidate deployed
with all of its traffic, the versions it replaces undeployed once it is up). Every golden prompt must be answered with
a well-formed answer (``onnx``: finite logits of the tokenizer's vocabulary; ``hf``: a non-empty reply), within
``max_p95_ms`` when set, and for ``hf`` at least ``min_match`` of the replies must start with the reference answer.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from kfp_llmops.artifacts import CHAT_FORMATS
from kfp_llmops.deployment.config import StagingConfig
from kfp_llmops.errors import ConfigError, UserInputError




@dataclass(frozen=True)
class Golden:
    """One golden prompt: the request as the served model takes it and the reference answer."""

    request: object
    reference: str


@dataclass
class SmokeResult:
    target: str
    where: str
    passed: bool
    prompts: int
    errors: int
    malformed: int
    matched: int | None
    p95_ms: float | None
    reasons: list[str]
    examples: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def well_formed(serving_format: str, answer, vocab_size: int) -> str | None:
    """None when ``answer`` is what the served model must return, else what is wrong with it. ``vocab_size``: the
    tokenizer's (a model's logits may be wider: vocabularies are padded)."""
    if serving_format in CHAT_FORMATS:
        return None if isinstance(answer, str) and answer.strip() else f"an empty reply ({answer!r})"
    import numpy as np

    logits = np.asarray(answer)
    if logits.ndim != 3 or logits.shape[0] != 1 or logits.shape[-1] < vocab_size:  # models pad their vocabulary
        return f"logits of shape {list(logits.shape)}, expected [1, sequence, >= {vocab_size} (the tokenizer's)]"
    if not np.isfinite(logits).all():
        return "logits that are not all finite (NaN or inf)"
    return None


def matches(reply: str, reference: str) -> bool:
    """The reply starts with the reference answer (whitespace-normalised)."""
    return " ".join(reply.split()).startswith(" ".join(reference.split()))


def smoke_test(call: Callable[[object], object], golden: list[Golden], cfg: StagingConfig, *, serving_format: str,
               vocab_size: int, target: str, where: str, log: Callable[[str], None] = print) -> SmokeResult:
    """Calls every golden prompt once through ``call`` and applies the rules."""
    if cfg.min_match and serving_format not in CHAT_FORMATS:
        raise ConfigError("StagingConfig.min_match needs serving_format hf: the ONNX decoder answers with logits (its "
                          "greedy answers were checked against the merged model at export)")
    errors, malformed, matched, times, examples = 0, 0, 0, [], []
    for item in golden:
        start = time.perf_counter()
        try:
            answer = call(item.request)
        except Exception as exc:  # noqa: BLE001 (any failure to answer is the finding)
            errors += 1
            examples.append({"reference": item.reference, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        times.append((time.perf_counter() - start) * 1000)
        problem = well_formed(serving_format, answer, vocab_size)
        if problem:
            malformed += 1
        hit = serving_format in CHAT_FORMATS and problem is None and matches(answer, item.reference)
        matched += hit
        examples.append({"reference": item.reference, **({"reply": answer} if serving_format in CHAT_FORMATS else {}),
                         **({"malformed": problem} if problem else {}), **({"matched": hit} if serving_format in CHAT_FORMATS else {})})
    import numpy as np

    p95 = float(np.percentile(times, 95)) if times else None
    n = len(golden)
    reasons = [f"answered {n - errors} of {n} golden prompts: {'ok' if errors == 0 else 'FAIL'}",
               f"well-formed answers {n - errors - malformed} of {n - errors}: {'ok' if malformed == 0 else 'FAIL'}"]
    passed = errors == 0 and malformed == 0
    if cfg.max_p95_ms and p95 is not None:
        ok = p95 <= cfg.max_p95_ms
        reasons.append(f"p95 latency {p95:.1f} ms (max {cfg.max_p95_ms:.1f} ms): {'ok' if ok else 'FAIL'}")
        passed &= ok
    if serving_format in CHAT_FORMATS and cfg.min_match:
        ok = matched / n >= cfg.min_match
        reasons.append(f"replies starting with the reference {matched} of {n} ({matched / n:.2f}, min "
                       f"{cfg.min_match:.2f}): {'ok' if ok else 'FAIL'}")
        passed &= ok
    for line in reasons:
        log(f"staging smoke test ({target}, {where}): {line}")
    return SmokeResult(target, where, passed, n, errors, malformed, matched if serving_format in CHAT_FORMATS else None, p95,
                       reasons, examples)


class StagingFailed(UserInputError):
    """The candidate failed its staging smoke test; production was not touched."""


def raise_if_failed(result: SmokeResult, model_name: str, version: str) -> None:
    if not result.passed:
        raise StagingFailed(f"{model_name} version {version} failed its staging smoke test on {result.target} "
                            f"({result.where}); production traffic was not moved: "
                            + "; ".join(r for r in result.reasons if r.endswith("FAIL")))


def report_markdown(result: SmokeResult | None, *, model_name: str, version: str) -> str:
    if result is None:
        return (f"# Staging smoke test of {model_name} version {version}: skipped\n\n"
                "- no staging target configured (`staging_config.target` is empty)\n")
    lines = [f"# Staging smoke test of {model_name} version {version}: {'passed' if result.passed else 'FAILED'}", "",
             f"- target: `{result.target}` ({result.where})",
             f"- p95 latency: {'' if result.p95_ms is None else f'{result.p95_ms:.1f} ms'}", "",
             *(f"- {r}" for r in result.reasons), "", "| # | reference | answer |", "|---|---|---|"]
    for i, ex in enumerate(result.examples, 1):
        answer = ex.get("error") or ex.get("malformed") or ex.get("reply", "logits ok")
        lines.append(f"| {i} | {_cell(ex['reference'])} | {_cell(str(answer))} |")
    return "\n".join(lines) + "\n"


def _cell(text: str, limit: int = 80) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"
