"""The HTML reports as a person sees them: each page rendered by headless Chromium (Debian's ``chromium``), which
must load it without a page or console error, keep the inline SVG plot in its DOM, and paint more than a blank page.
Slow (a browser start per page); run by ``make test-all``."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from kfp_llmops.components.deployment.rollout_model import core as rollout
from kfp_llmops.components.evaluation.evaluate_model import core as evaluation
from kfp_llmops.components.evaluation.evaluate_model.report import render_html
from kfp_llmops.components.training.train_lora.report import loss_curve_html

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _model(answers, refs, latency):
    rows = [{"instruction": f"q{i}", "reference": r, "answer": a, "exact_match": float(a == r), "rouge_l": float(a == r),
             "sentence_bleu": 100.0 * (a == r)} for i, (a, r) in enumerate(zip(answers, refs))]
    return {"examples": rows, "quality": {"perplexity": 2.0, "bleu": evaluation.metrics.corpus_bleu(answers, refs)},
            "speed": {"latency_ms": latency, "latency_p50_ms": 10.0, "latency_p95_ms": 12.0, "tokens_per_s_batch1": 100.0,
                      "tokens_per_s_batch8": 500.0, "peak_rss_mb": 100.0, "cost_per_1k_tokens": 0.001}}


def pages(tmp_path):
    refs = [f"word{i} word{i + 1}" for i in range(30)]
    cfg = evaluation.EvalConfig(bootstrap_resamples=100, golden_prompts=3)
    cand = _model(refs[:20] + ["x"] * 10, refs, list(np.linspace(10, 12, 16)))
    base = _model(["x"] * 30, refs, list(np.linspace(10, 13, 16)))
    report = {"config": {"throughput_batch": 8}, "models": {"candidate": cand, "base": base},
              "comparisons": {"base": evaluation.compare(cand, base, cfg)}}
    step = rollout.StepResult
    result = rollout.RolloutResult("promoted", [step(p, {"requests": 20, "errors": 0, "p95_ms": 20.0 + p / 50},
                                                     {"requests": 80, "p95_ms": 21.0} if p < 100 else None, True, [])
                                                for p in (5, 10, 25, 50, 100)], [], False)
    out = {"training": loss_curve_html({"loss": list(np.linspace(3, 1, 50)), "learning_rate": [1e-3] * 50,
                                        "validation": [[25, 1.8], [50, 1.2]]}, 1.2),
           "evaluation": render_html(report),
           "rollout": rollout.report_html(result, target="local", model_name="llm", version="2", stable="1")}
    paths = {}
    for name, text in out.items():
        paths[name] = tmp_path / f"{name}.html"
        paths[name].write_text(text, encoding="utf-8")
    return paths


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.parametrize("name", ["training", "evaluation", "rollout"])
def test_report_renders_in_chromium(name, tmp_path):
    from PIL import Image

    page = pages(tmp_path)[name]
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,800",
            "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = [line for line in dom.stderr.splitlines() if re.search(r"CONSOLE|Uncaught|SyntaxError|Failed to load", line)]
    assert not errors, errors
    assert re.search(r"<svg[^>]*>", dom.stdout) and "</svg>" in dom.stdout  # the browser kept the plot
    shot = tmp_path / f"{name}.png"
    subprocess.run([*args, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # lines and text were painted, not a blank page
