"""Recorded traffic for the monitoring tests: KServe payload logger CloudEvents with controlled times."""

import random
from datetime import datetime, timedelta, timezone

from kfp_llmops.serving.payload_log import REQUEST_TYPE, RESPONSE_TYPE


def event(kind, event_id, data, when):
    from cloudevents.conversion import to_json
    from cloudevents.http import CloudEvent

    return to_json(CloudEvent({"type": kind, "source": "http://kserve-agent", "id": event_id, "time": when.isoformat(),
                               "datacontenttype": "application/json", "inferenceservicename": "llm"}, data)).decode()


def record(path, exchanges, latency_ms=20.0):
    """``exchanges``: (user prompt, reply or None for an unanswered request[, the request's metadata]) as KServe's
    logger would record them."""
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    lines = []
    for i, (prompt, reply, *metadata) in enumerate(exchanges):
        t0 = start + timedelta(seconds=i)
        body = {"model": "llm", "messages": [{"role": "user", "content": prompt}], **({"metadata": metadata[0]} if metadata else {})}
        lines.append(event(REQUEST_TYPE, f"r{i}", body, t0))
        if reply is not None:
            lines.append(event(RESPONSE_TYPE, f"r{i}", {"choices": [{"message": {"role": "assistant", "content": reply}}]},
                               t0 + timedelta(milliseconds=latency_ms)))
    path.write_text("\n".join(lines) + "\n")
    return path


def like_training(reference, n=150):
    rng = random.Random(1)
    return [rng.choice(reference) for _ in range(n)]


def drifting(n=150):
    rng = random.Random(2)
    topics = ["invoice", "refund", "shipping", "password", "contract", "warranty", "delivery", "account"]
    return [(" ".join(rng.choice(topics) for _ in range(rng.randint(25, 40))) + "?", "I'm sorry, I can't help with that.")
            for _ in range(n)]
