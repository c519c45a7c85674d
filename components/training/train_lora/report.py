"""The training report: loss, validation loss and learning rate per step as one self-contained HTML page (an inline
SVG drawn by matplotlib; a ``dsl.HTML`` artifact for the Kubeflow UI)."""

from __future__ import annotations

from html import escape


def loss_curve_html(history: dict, validation_loss: float, title: str = "LoRA training") -> str:
    from kfp_llmops.plots import training_curves

    losses = history.get("loss", [])
    if not losses:
        return f"<!doctype html><html><body><h1>{escape(title)}</h1><p>no steps</p></body></html>"
    validation = [tuple(v) for v in history.get("validation", [])]
    svg = training_curves(losses, history.get("learning_rate") or None, validation or None, validation_loss)
    lrs = history.get("learning_rate") or []
    peak = f"; peak learning rate {max(lrs):.2e}" if lrs else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>figure{{margin:0}} figure svg{{max-width:100%;height:auto}}</style></head>
<body style="font-family:system-ui,sans-serif">
<h1>{escape(title)}</h1>
<p>{len(losses)} steps; training loss first {losses[0]:.4f}, last {losses[-1]:.4f}; validation loss {validation_loss:.4f}
{f"({len(validation)} evaluations)" if validation else "(at the end)"}{peak}</p>
<figure id="training-curves">{svg}</figure>
</body></html>
"""
