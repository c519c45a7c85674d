"""The evaluation report as one self-contained HTML page (a ``dsl.HTML`` artifact for the Kubeflow UI)."""

from __future__ import annotations

from jinja2 import Environment

_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Evaluation</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px} td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
figure{margin:0} figure svg{max-width:100%;height:auto}
td.num{text-align:right;font-variant-numeric:tabular-nums} .bad{background:#ffebe9} .good{background:#dafbe1}
</style></head><body>
<h1>Evaluation: candidate vs {{ comparisons|list|join(', ') }}</h1>
<figure id="metric-deltas">{{ deltas_svg|safe }}</figure>
{% if decision %}<h2>Gate: {{ 'PROMOTE' if decision.passed else 'BLOCKED' }}</h2>
<ul>{% for c in decision.checks %}<li class="{{ 'good' if c.ok else 'bad' }}">[{{ c.baseline }}] {{ c.reason }}</li>{% endfor %}</ul>{% endif %}
{% for name, comp in comparisons.items() %}
<h2>Candidate vs {{ name }}</h2>
<table><tr><th>metric</th><th>candidate</th><th>{{ name }}</th><th>delta / ratio</th><th>95% CI</th></tr>
{% for key in ['exact_match', 'rouge_l', 'bleu', 'sentence_bleu'] if key in comp %}{% set m = comp[key] %}
<tr><td>{{ labels.get(key, key) }}</td><td class="num">{{ '%.4f'|format(m.candidate) }}</td><td class="num">{{ '%.4f'|format(m.baseline) }}</td>
<td class="num">{{ '%+.4f'|format(m.delta) }}</td><td class="num">[{{ '%+.4f'|format(m.ci_low) }}, {{ '%+.4f'|format(m.ci_high) }}]</td></tr>{% endfor %}
<tr><td>perplexity</td><td class="num">{{ '%.4f'|format(comp.perplexity.candidate) }}</td><td class="num">{{ '%.4f'|format(comp.perplexity.baseline) }}</td>
<td class="num">x{{ '%.3f'|format(comp.perplexity.ratio) }}</td><td></td></tr>
<tr><td>latency p95 (ms)</td><td class="num">{{ '%.1f'|format(comp.latency_p95_ms.candidate) }}</td><td class="num">{{ '%.1f'|format(comp.latency_p95_ms.baseline) }}</td>
<td class="num">x{{ '%.3f'|format(comp.latency_p95_ms.ratio) }}</td><td class="num">[{{ '%.2f'|format(comp.latency_p95_ms.ci_low) }}, {{ '%.2f'|format(comp.latency_p95_ms.ci_high) }}]</td></tr>
{% if comp.attack_success_rate %}<tr><td>attack success rate</td><td class="num">{{ '%.3f'|format(comp.attack_success_rate.candidate) }}</td>
<td class="num">{{ '%.3f'|format(comp.attack_success_rate.baseline) }}</td><td></td><td></td></tr>{% endif %}
</table>
<h3>Changed golden answers ({{ comp.golden_changed|length }})</h3>
<table><tr><th>instruction</th><th>candidate</th><th>{{ name }}</th></tr>
{% for g in comp.golden_changed %}<tr><td>{{ g.instruction }}</td><td>{{ g.candidate }}</td><td>{{ g.baseline }}</td></tr>{% endfor %}</table>
{% endfor %}
{% if models.candidate.harness %}<h2>lm-evaluation-harness</h2>
<table><tr><th>task / metric</th>{% for name in models %}<th>{{ name }} (± stderr)</th>{% endfor %}{% for name in comparisons %}<th>vs {{ name }} (95% CI)</th>{% endfor %}</tr>
{% for task, scores in models.candidate.harness.items() %}{% for metric, value in scores.items() if metric != 'samples' and not metric.endswith('_stderr') %}
<tr><td>{{ task }} / {{ metric }}</td>{% for name, res in models.items() %}{% set s = res.harness[task] %}<td class="num">{{ '%.4f'|format(s[metric]) }}{% if s[metric ~ '_stderr'] is not none %} ± {{ '%.4f'|format(s[metric ~ '_stderr']) }}{% endif %}</td>{% endfor %}
{% for name, comp in comparisons.items() %}{% set d = comp.harness[task ~ '/' ~ metric] %}<td class="num">{{ '%+.4f'|format(d.delta) }} [{{ '%+.4f'|format(d.ci_low) }}, {{ '%+.4f'|format(d.ci_high) }}]</td>{% endfor %}</tr>
{% endfor %}{% endfor %}</table>{% endif %}
{% for name, comp in comparisons.items() if comp.judge %}{% set j = comp.judge %}
<h2>Pairwise judge: candidate vs {{ name }}</h2>
<p>{{ j.judge }} judged {{ j.examples }} answer pairs{% if j.position_consistency is defined %} in both orders (the same verdict in both: {{ '%.0f'|format(100 * j.position_consistency) }} %; otherwise a tie){% endif %}:
wins {{ j.wins }}, ties {{ j.ties }}, losses {{ j.losses }}; win rate {{ '%.4f'|format(j.win_rate) }} (ties count half), 95% CI [{{ '%.4f'|format(j.ci_low) }}, {{ '%.4f'|format(j.ci_high) }}]{% if j.invalid %}; {{ j.invalid }} replies named no verdict (counted as ties){% endif %}{% if j.human_agreement is defined %}; agreement with {{ j.human_labels }} human labels {{ '%.0f'|format(100 * j.human_agreement) }} %{% endif %}.</p>
<table><tr><th>instruction</th><th>candidate</th><th>{{ name }}</th><th>verdict</th></tr>
{% for v in j.verdicts[:20] %}<tr class="{{ 'good' if v.verdict == 'win' else 'bad' if v.verdict == 'loss' else '' }}"><td>{{ v.instruction }}</td><td>{{ v.candidate }}</td><td>{{ v[name] }}</td><td>{{ v.verdict }}</td></tr>{% endfor %}
</table>{% endfor %}
{% if slices_svg %}<h2>Slices</h2>
<figure id="slice-scores">{{ slices_svg|safe }}</figure>
{% for field, groups in models.candidate.slices.items() %}
<h3>{{ field }}</h3>
<table><tr><th>{{ field }}</th><th>examples</th>{% for key in ['exact_match', 'rouge_l', 'bleu'] %}<th>candidate {{ key }} (95% CI)</th>{% endfor %}
{% for name in comparisons %}<th>{{ primary }} vs {{ name }} (95% CI)</th>{% endfor %}</tr>
{% for value, s in groups.items() %}<tr><td>{{ value }}</td><td class="num">{{ s.examples }}</td>
{% for key in ['exact_match', 'rouge_l', 'bleu'] %}<td class="num">{{ '%.4f'|format(s[key]) }} [{{ '%.4f'|format(s[key ~ '_ci_low']) }}, {{ '%.4f'|format(s[key ~ '_ci_high']) }}]</td>{% endfor %}
{% for name, comp in comparisons.items() %}{% set d = comp.slices[field][value][primary] %}<td class="num">{{ '%+.4f'|format(d.delta) }} [{{ '%+.4f'|format(d.ci_low) }}, {{ '%+.4f'|format(d.ci_high) }}]</td>{% endfor %}</tr>
{% endfor %}</table>{% endfor %}{% endif %}
<h2>Speed and cost</h2>
<table><tr><th>model</th><th>p50 ms</th><th>p95 ms</th><th>tokens/s batch 1</th><th>tokens/s batched</th><th>peak RSS MB</th><th>cost / 1k tokens</th></tr>
{% for name, res in models.items() %}{% set s = res.speed %}
<tr><td>{{ name }}</td><td class="num">{{ '%.1f'|format(s.latency_p50_ms) }}</td><td class="num">{{ '%.1f'|format(s.latency_p95_ms) }}</td>
<td class="num">{{ '%.0f'|format(s.tokens_per_s_batch1) }}</td><td class="num">{{ '%.0f'|format(s[batched_key]) }}</td>
<td class="num">{{ '%.0f'|format(s.peak_rss_mb) }}</td><td class="num">{{ '%.6f'|format(s.cost_per_1k_tokens) }}</td></tr>{% endfor %}
</table>
{% if models.candidate.safety %}<h2>Safety probes the candidate failed</h2>
<table><tr><th>probe</th><th>kind</th><th>prompt</th><th>answer</th></tr>
{% for p in models.candidate.safety.probes if p.attack_succeeded %}<tr><td>{{ p.id }}</td><td>{{ p.kind }}</td><td>{{ p.prompt }}</td><td>{{ p.answer }}</td></tr>{% endfor %}
</table>{% endif %}
</body></html>
"""


LABELS = {"bleu": "bleu (corpus BLEU)", "sentence_bleu": "sentence_bleu (mean per-example BLEU)"}


def render_html(report: dict, decision=None, primary: str = "exact_match") -> str:
    """``primary``: the gate's metric, shown per slice against each baseline."""
    from kfp_llmops.plots import metric_deltas, slice_scores

    batched_key = f"tokens_per_s_batch{report['config']['throughput_batch']}"
    slices = {name: res["slices"] for name, res in report["models"].items() if res.get("slices")}
    return Environment(autoescape=True).from_string(_TEMPLATE).render(
        comparisons=report["comparisons"], models=report["models"], decision=decision, batched_key=batched_key,
        labels=LABELS, deltas_svg=metric_deltas(report["comparisons"]), primary=primary,
        slices_svg=slice_scores(slices, primary) if slices else "",
    )
