"""Production monitoring: what the served model received and answered, against its training data and its SLOs.

Traffic comes as KServe's payload logger writes it: CloudEvents (``org.kubeflow.serving.inference.request`` and
``...response``, paired by ``id``), stored one JSON event per line (structured mode, as a logger sink writes them; the
local servers' ``--payload-log`` writes the same). Requests are OpenAI-compatible chat (``serving_format: hf``) or
protocol v2 ``infer`` (``onnx``: token ids, so input drift is measured on prompt lengths in tokens only, and the
logits it returns have no text to measure).

Checks (``MonitorConfig``): input drift (PSI of the prompts' lengths and word frequencies against the training data's
prompts, reusing the validation's PSI), output drift (PSI of the replies' lengths against the training responses) and
the change of the refusal rate, and the SLOs: p95 latency and error rate (from Prometheus when a URL is given, else
from the log's event times and unanswered requests). A breach names what was exceeded; what to do about it
(``on_breach``: ``rollback``, ``retrain``) is decided by the caller. Never imports kfp.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from kfp_llmops.configs import MonitorConfig
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.serving.payload_log import REQUEST_TYPE, RESPONSE_TYPE  # KServe's CloudEvent types


@dataclass
class Exchange:
    """One served request and its response (None when it was never answered)."""

    id: str
    prompt: str | None  # the last user turn (hf); None for token ids
    prompt_tokens: int | None  # onnx: the request's length in tokens
    reply: str | None
    latency_ms: float | None
    error: bool
    fields: dict = field(default_factory=dict)  # the request's scalar fields and its "metadata" ones, as text


def read_payload_log(path: str | Path) -> list[Exchange]:
    """The exchanges of a payload log (a JSONL file, or a folder of them), paired by CloudEvent id, in order."""
    from cloudevents.conversion import from_json
    from cloudevents.http import CloudEvent

    files = sorted(Path(path).glob("*.jsonl")) if Path(path).is_dir() else [Path(path)]
    if not files or not all(f.is_file() for f in files):
        raise UserInputError(f"{path}: no payload log (a JSONL file of CloudEvents, or a folder of them)")
    requests, responses = {}, {}
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = from_json(CloudEvent, line)
            except Exception as exc:  # noqa: BLE001 (the library raises several kinds)
                raise UserInputError(f"{f}:{n}: not a CloudEvent in JSON ({type(exc).__name__}: {exc})"[:400]) from None
            kind = event["type"]
            if kind == REQUEST_TYPE:
                requests[event["id"]] = event
            elif kind == RESPONSE_TYPE:
                responses[event["id"]] = event
    out = []
    for rid, req in requests.items():
        resp = responses.get(rid)
        prompt, tokens = _prompt(req.data)
        reply, error = (None, True) if resp is None else _reply(resp.data)
        latency = None
        if resp is not None and req.get("time") and resp.get("time"):
            latency = (_time(resp["time"]) - _time(req["time"])).total_seconds() * 1000
        out.append(Exchange(rid, prompt, tokens, reply, latency, error, _fields(req.data)))
    return out


def _fields(data) -> dict[str, str]:
    """What a request carries besides its input, for slicing: its own scalar fields and those of its ``metadata``
    (the OpenAI API's request metadata), as text."""
    data = _data(data) or {}
    out = {}
    for source in (data, data.get("metadata") if isinstance(data.get("metadata"), dict) else {}):
        out.update({k: str(v) for k, v in source.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
    return out


def _time(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _data(data):
    if isinstance(data, (bytes, str)):
        try:
            return json.loads(data)
        except ValueError:
            return None
    return data


def _prompt(data) -> tuple[str | None, int | None]:
    data = _data(data) or {}
    if "messages" in data:
        users = [m.get("content") or "" for m in data["messages"] if m.get("role") == "user"]
        return (users[-1] if users else ""), None
    for item in data.get("inputs", []):
        if item.get("name") == "input_ids":
            shape = item.get("shape") or [0]
            return None, int(shape[-1])
    return None, None


def _reply(data) -> tuple[str | None, bool]:
    data = _data(data)
    if not isinstance(data, dict) or "error" in data:
        return None, True
    if "choices" in data:
        choices = data.get("choices") or [{}]
        return (choices[0].get("message") or {}).get("content") or "", False
    return None, False  # protocol v2 logits: answered, no text


def refusal_rate(texts: list[str], patterns: tuple[str, ...]) -> float:
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    if not texts:
        return 0.0
    return sum(any(c.search(t) for c in compiled) for t in texts) / len(texts)


@dataclass
class Check:
    name: str
    value: float | None
    limit: float
    breached: bool
    note: str = ""

    def line(self) -> str:
        value = "no data" if self.value is None else f"{self.value:.4f}"
        return f"{self.name} {value} (limit {self.limit:g}){': ' + self.note if self.note else ''}: " \
               f"{'BREACH' if self.breached else 'ok'}"


@dataclass
class MonitorResult:
    requests: int
    conclusive: bool
    breached: bool
    checks: list[Check]
    drift: dict[str, float]
    figures: dict = field(default_factory=dict)  # the distributions the report plots
    slices: dict = field(default_factory=dict)  # {field: {value: {requests, errors, error_rate, refusal_rate, ...}}}

    def to_dict(self) -> dict:
        return {**asdict(self), "figures": {}}

    def summary(self) -> str:
        if not self.conclusive:
            return f"inconclusive: {self.requests} logged requests"
        return "BREACH: " + "; ".join(c.line() for c in self.checks if c.breached) if self.breached else "all checks ok"


def monitor(exchanges: list[Exchange], reference: list[tuple[str, str]], cfg: MonitorConfig, *,
            slo_stats=None, tokenizer=None) -> MonitorResult:
    """``reference``: (prompt, response) of the training data (the last user turn and final answer of a chat
    record). ``slo_stats``: :class:`RevisionStats` from Prometheus, else the log's own. ``tokenizer``: measures the
    reference prompts in tokens when the traffic is token ids (``onnx``)."""
    import numpy as np

    from kfp_llmops.drift import drift_report, numeric_psi
    from kfp_llmops.text import words

    n = len(exchanges)
    checks, drift, figures = [], {}, {}
    if n < cfg.min_requests:
        return MonitorResult(n, False, False, [Check("requests", n, cfg.min_requests, False,
                                                     "fewer than min_requests: nothing decided")], {}, {})
    prompts = [e.prompt for e in exchanges if e.prompt is not None]
    replies = [e.reply for e in exchanges if e.reply is not None]
    ref_prompts, ref_replies = [p for p, _ in reference], [r for _, r in reference]
    if prompts:
        drift.update({f"input.{k}": v for k, v in drift_report({"prompt": ref_prompts}, {"prompt": prompts}).items()})
        figures["prompt words"] = ([len(words(p)) for p in ref_prompts], [len(words(p)) for p in prompts])
    else:
        tokens = [e.prompt_tokens for e in exchanges if e.prompt_tokens is not None]
        if tokens and tokenizer is not None:
            ref_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in ref_prompts]
            drift["input.prompt.tokens"] = numeric_psi(np.array(ref_tokens, float), np.array(tokens, float))
            figures["prompt tokens"] = (ref_tokens, tokens)
    worst_input = max((v for k, v in drift.items() if k.startswith("input.")), default=None)
    checks.append(Check("input drift (max PSI)", worst_input, cfg.max_input_psi,
                        worst_input is not None and worst_input > cfg.max_input_psi,
                        max((k for k in drift if k.startswith("input.")), key=drift.get, default="")))
    if replies:
        ref_len = np.array([len(words(r)) for r in ref_replies], float)
        cur_len = np.array([len(words(r)) for r in replies], float)
        drift["output.reply.words"] = numeric_psi(ref_len, cur_len)
        figures["reply words"] = (ref_len.tolist(), cur_len.tolist())
        checks.append(Check("output drift (PSI of reply length)", drift["output.reply.words"], cfg.max_output_psi,
                            drift["output.reply.words"] > cfg.max_output_psi))
        served, trained = refusal_rate(replies, cfg.refusal_patterns), refusal_rate(ref_replies, cfg.refusal_patterns)
        drift["output.refusal_rate"], drift["reference.refusal_rate"] = served, trained
        checks.append(Check("refusal rate increase", served - trained, cfg.max_refusal_rate_increase,
                            served - trained > cfg.max_refusal_rate_increase, f"{served:.3f} served vs {trained:.3f} trained"))
    if slo_stats is not None:
        error_rate, p95, source = slo_stats.error_rate, slo_stats.p95_ms, "Prometheus"
    else:
        latencies = [e.latency_ms for e in exchanges if e.latency_ms is not None]
        error_rate = sum(e.error for e in exchanges) / n
        p95, source = (float(np.percentile(latencies, 95)) if latencies else None), "payload log"
    checks.append(Check("error rate", error_rate, cfg.slo_error_rate, error_rate > cfg.slo_error_rate, source))
    if cfg.slo_p95_ms:
        checks.append(Check("p95 latency ms", p95, cfg.slo_p95_ms, p95 is not None and p95 > cfg.slo_p95_ms, source))
    return MonitorResult(n, True, any(c.breached for c in checks), checks, drift, figures,
                         traffic_slices(exchanges, cfg))


def traffic_slices(exchanges: list[Exchange], cfg: MonitorConfig) -> dict:
    """The served traffic per value of each ``cfg.slices`` field that requests carry (the evaluation's slices):
    requests, errors, error rate, refusal rate, mean reply words and p95 latency of each slice."""
    import numpy as np

    from kfp_llmops.text import words

    out: dict = {}
    for name in cfg.slices:
        groups: dict[str, list[Exchange]] = {}
        for e in exchanges:
            groups.setdefault(e.fields.get(name, "(missing)"), []).append(e)
        if set(groups) == {"(missing)"}:
            continue  # no request carries the field
        out[name] = {}
        for value, group in sorted(groups.items()):
            replies = [e.reply for e in group if e.reply is not None]
            latencies = [e.latency_ms for e in group if e.latency_ms is not None]
            errors = sum(e.error for e in group)
            out[name][value] = {
                "requests": len(group), "errors": errors, "error_rate": errors / len(group),
                "refusal_rate": refusal_rate(replies, cfg.refusal_patterns) if replies else None,
                "reply_words_mean": float(np.mean([len(words(r)) for r in replies])) if replies else None,
                "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None}
    return out


def reference_pairs(path: str) -> list[tuple[str, str]]:
    """(prompt, response) per training record: the instruction and response, or a conversation's last user turn and
    its final assistant turn."""
    from kfp_llmops.datasets import read_jsonl, records
    from kfp_llmops.prompts import last_user_text, split_reference

    out = []
    for item in records(read_jsonl(path)):
        context, answer = split_reference(item)
        out.append((last_user_text(context), answer))
    return out


def report_html(result: MonitorResult, *, model_name: str, version: str, actions: list[str]) -> str:
    from html import escape

    from kfp_llmops.plots import distributions

    title = f"Monitoring of {model_name} version {version}: {result.summary()}"
    plot = (f'<figure id="distributions">{distributions(result.figures)}</figure>' if result.figures
            else "<p>no distributions to plot</p>")
    rows = "".join(f"<tr><td>{escape(c.name)}</td><td>{'' if c.value is None else f'{c.value:.4f}'}</td>"
                   f"<td>{c.limit:g}</td><td>{escape(c.note)}</td><td>{'BREACH' if c.breached else 'ok'}</td></tr>"
                   for c in result.checks)
    drift = "".join(f"<tr><td>{escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in sorted(result.drift.items()))
    keys = ("requests", "errors", "error_rate", "refusal_rate", "reply_words_mean", "latency_p95_ms")
    cell = lambda v: "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    slices = "".join(
        f"<h3>{escape(name)}</h3><table><tr><th>{escape(name)}</th>{''.join(f'<th>{k}</th>' for k in keys)}</tr>"
        + "".join(f"<tr><td>{escape(value)}</td>{''.join(f'<td>{cell(s[k])}</td>' for k in keys)}</tr>"
                  for value, s in groups.items()) + "</table>"
        for name, groups in result.slices.items())
    done = "".join(f"<li>{escape(a)}</li>" for a in actions) or "<li>none</li>"
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>figure{{margin:0}} figure svg{{max-width:100%;height:auto}} td,th{{padding:2px 8px}}</style>"
            f'</head><body style="font-family:system-ui,sans-serif">\n<h1>{escape(title)}</h1>\n'
            f"<p>{result.requests} logged requests, compared with the training data.</p>\n{plot}\n"
            f"<h2>Checks</h2><table><tr><th>check</th><th>value</th><th>limit</th><th>note</th><th></th></tr>{rows}</table>\n"
            f"<h2>Drift (PSI)</h2><table>{drift}</table>\n"
            + (f"<h2>Slices</h2>{slices}\n" if slices else "")
            + f"<h2>Actions</h2><ul>{done}</ul>\n</body></html>\n")


def prometheus_slo(url: str, target: str, cfg: MonitorConfig, *, namespace: str, inference_service: str,
                   vertex_endpoint: str = ""):
    """Requests, errors and p95 latency of the whole production service over ``cfg.window_s``: Knative's
    queue-proxy metrics of the InferenceService's predictor (``kserve``), or Vertex AI's online prediction metrics of
    the endpoint through Cloud Monitoring's PromQL API (``vertex``)."""
    from kfp_llmops.deployment.metrics import (KNATIVE_QUERIES, VERTEX_QUERIES, Prometheus,
                                                                        Queries)

    def rewrite(queries: Queries, old: str, new: str) -> Queries:
        return Queries(*(getattr(queries, f).replace(old, new) for f in ("requests", "errors", "p95_seconds")))

    if target == "kserve":
        queries = rewrite(KNATIVE_QUERIES, 'revision_name="{revision}"', 'service_name="{revision}"')
        return Prometheus(url).revision_stats(queries, revision=f"{inference_service}-predictor", namespace=namespace,
                                              window_s=cfg.window_s)
    if target == "vertex":
        from kfp_llmops.deployment.vertex import cloud_monitoring_prometheus

        queries = rewrite(VERTEX_QUERIES, 'deployed_model_id="{revision}"', 'deployed_model_id=~"{revision}"')
        prom = (cloud_monitoring_prometheus(vertex_endpoint.split("/")[1]) if "monitoring.googleapis.com" in url
                else Prometheus(url))
        return prom.revision_stats(queries, revision=".+", namespace=vertex_endpoint.rsplit("/", 1)[-1],
                                   window_s=cfg.window_s)
    raise ConfigError("prometheus_url is read for the kserve and vertex targets; the local target's SLOs come from "
                      "its payload log")
