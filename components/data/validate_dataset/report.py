"""The validation report as one self-contained HTML page (a ``dsl.HTML`` artifact renders it in the Kubeflow UI)."""

from __future__ import annotations

from jinja2 import Environment

_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Data validation: {{ status }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1 .PASSED{color:#1a7f37} h1 .FAILED{color:#cf222e}
table{border-collapse:collapse;margin:1em 0;font-size:14px} td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
tr.fail-critical{background:#ffebe9} tr.fail-warning{background:#fff8c5} tr.fail-info{background:#ddf4ff}
code{font-size:13px}
</style></head><body>
<h1>Data validation: <span class="{{ status }}">{{ status }}</span></h1>
<ul>
<li>dataset: <code>{{ r.path }}</code> ({{ r.record_format }} records)</li>
<li>rows: {{ r.rows }}</li>
<li>checks: {{ r.checks|length }}; failed: {{ r.failures|length }} ({{ r.critical_failures|length }} critical)</li>
</ul>
<table>
<tr><th>result</th><th>severity</th><th>check</th><th>field</th><th>failing rows</th><th>sample lines</th><th>sample values</th></tr>
{% for c in r.checks %}
<tr class="{{ '' if c.success else 'fail-' ~ c.severity }}">
<td>{{ 'pass' if c.success else 'FAIL' }}</td><td>{{ c.severity }}</td><td><code>{{ c.check }}</code></td><td><code>{{ c.field }}</code></td>
<td>{{ c.unexpected_count }}</td><td>{{ c.lines|join(', ') }}</td>
<td>{% for v in c.examples %}<code>{{ v }}</code>{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
</tr>
{% endfor %}
</table>
</body></html>
"""


def render_html(result) -> str:
    env = Environment(autoescape=True)
    return env.from_string(_TEMPLATE).render(r=result, status="PASSED" if result.success else "FAILED")
