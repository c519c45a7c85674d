"""The loss curve as a self-contained HTML page with an inline SVG (a ``dsl.HTML`` artifact for the Kubeflow UI)."""

from __future__ import annotations

from html import escape


def loss_curve_html(losses: list[float], validation_loss: float, title: str = "LoRA training loss") -> str:
    width, height, pad = 640, 320, 40
    if not losses:
        return f"<!doctype html><html><body><h1>{escape(title)}</h1><p>no steps</p></body></html>"
    top, bottom = max(losses), min(min(losses), validation_loss)
    span = (top - bottom) or 1.0

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / max(1, len(losses) - 1))

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * ((v - bottom) / span)

    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(losses))
    val_y = y(validation_loss)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head>
<body style="font-family:system-ui,sans-serif">
<h1>{escape(title)}</h1>
<p>{len(losses)} steps; first {losses[0]:.4f}, last {losses[-1]:.4f}; validation loss {validation_loss:.4f}</p>
<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="training loss per step">
<rect x="0" y="0" width="{width}" height="{height}" fill="white" stroke="#d0d7de"/>
<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>
<text x="{pad}" y="{pad - 8}" font-size="12">{top:.3f}</text>
<text x="{pad}" y="{height - pad + 16}" font-size="12">{bottom:.3f} (step 1)</text>
<text x="{width - pad - 60}" y="{height - pad + 16}" font-size="12">step {len(losses)}</text>
<polyline fill="none" stroke="#0969da" stroke-width="2" points="{points}"/>
<line x1="{pad}" y1="{val_y:.1f}" x2="{width - pad}" y2="{val_y:.1f}" stroke="#cf222e" stroke-dasharray="6 4"/>
<text x="{width - pad - 120}" y="{val_y - 6:.1f}" font-size="12" fill="#cf222e">validation {validation_loss:.3f}</text>
</svg></body></html>
"""
