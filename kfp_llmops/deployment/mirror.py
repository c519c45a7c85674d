"""Shadow traffic: one request to stable and a copy to the candidate, their answers compared.

Used by the targets' shadow stage: ``local`` scrapes its servers' ``/metrics`` for the statistics; ``kserve`` calls
the two revisions through KServe's tag routing (``prev-`` / ``latest-`` URLs) and measures here, client side.
"""

from __future__ import annotations

import time

from kfp_llmops.artifacts import CHAT_FORMATS
from kfp_llmops.deployment.stats import RevisionStats, ShadowStats, text_agreement

HF_MAX_TOKENS = 16  # per chat request: enough to exercise decoding, short enough for a quick analysis


def answer(serving_format: str, url: str, model_name: str, request):
    """``onnx``: the logits of a protocol-v2 ``infer``; ``hf`` and ``adapter``: the reply text of an OpenAI-compatible chat call to ``model_name`` (an adapter's served name)."""
    from kfp_llmops.serving.local import chat_completion, infer_logits

    if serving_format in CHAT_FORMATS:
        reply = chat_completion(url, model_name, request, max_tokens=HF_MAX_TOKENS)
        return reply["choices"][0]["message"]["content"]
    return infer_logits(url, model_name, *request)


def agreement(serving_format: str, stable, candidate) -> float:
    """``hf``: how alike the two replies are, word by word; ``onnx``: 1.0 when both pick the same next token."""
    if serving_format in CHAT_FORMATS:
        return text_agreement(stable, candidate)
    return float(int(stable[0, -1].argmax()) == int(candidate[0, -1].argmax()))


def mirror(serving_format: str, urls: dict[str, str], model_name: str, requests: list, count: int) -> ShadowStats:
    """``count`` requests (cycling through ``requests``) to ``urls["stable"]``, each copied to ``urls["candidate"]``;
    requests, errors and p95 latency of each as measured here, and the mean agreement of the answers."""
    import numpy as np

    times = {rev: [] for rev in urls}
    errors = {rev: 0 for rev in urls}
    scores = []
    for i in range(count):
        request = requests[i % len(requests)]
        answers = {}
        for rev in ("stable", "candidate"):
            start = time.perf_counter()
            try:
                answers[rev] = answer(serving_format, urls[rev], model_name, request)
            except Exception:  # noqa: BLE001 (an HTTP error or a dropped connection counts as an error)
                errors[rev] += 1
                answers[rev] = None
            times[rev].append((time.perf_counter() - start) * 1000)
        if answers["stable"] is not None and answers["candidate"] is not None:
            scores.append(agreement(serving_format, answers["stable"], answers["candidate"]))
    stats = {rev: RevisionStats(float(count), float(errors[rev]),
                                float(np.percentile(times[rev], 95)) if times[rev] else None) for rev in urls}
    return ShadowStats(stats["candidate"], stats["stable"], len(scores), sum(scores) / len(scores) if scores else 0.0)
