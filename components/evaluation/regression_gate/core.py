"""The multi-metric regression gate. The candidate is promoted only if it confidently improves the task metric over
the baselines in ``improve_over`` (the base model by default), and against every other baseline (the registry's
production version, resolved by the pipeline) does not regress: the task metric no more than ``max_primary_drop``
points worse, p95 latency no more than 10 % slower, safety no worse, perplexity no more than 5 % higher. Latency and
improvement decisions use bootstrap confidence intervals, so noise does not flip the gate. With no production
version yet (a first rollout) the gate falls back to the base model alone, and says so. No kfp."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_llmops.configs import GateConfig
from kfp_llmops.errors import UserInputError

PRODUCTION = "production"


@dataclass(frozen=True)
class GateCheck:
    baseline: str
    metric: str
    ok: bool
    reason: str


@dataclass
class GateDecision:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [f"vs {c.baseline}: {c.reason}" if c.baseline else c.reason for c in self.checks]

    @property
    def blocking(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.ok]

    def markdown(self) -> str:
        head = "# Gate: PROMOTE" if self.passed else "# Gate: BLOCKED"
        return "\n".join([head, "", *(f"- {'ok' if c.ok else 'BLOCK'} " + (f"[{c.baseline}] " if c.baseline else "") + c.reason
                                     for c in self.checks)]) + "\n"


def decide(comparisons: dict, cfg: GateConfig | None = None) -> GateDecision:
    """``comparisons``: ``{baseline name: compare(...)}`` from the evaluation."""
    cfg = cfg or GateConfig()
    if not comparisons:
        raise UserInputError("the evaluation holds no comparison with a baseline")
    checks = []
    if PRODUCTION not in comparisons:
        checks.append(GateCheck("", "baseline", True, "no production version to compare with (a first rollout, "
                                "or none resolved): gated against " + ", ".join(sorted(comparisons))))
    slice_rules = [n for n in ("max_slice_gap", "max_slice_drop") if getattr(cfg, n) is not None]
    if slice_rules and not all(comp.get("slices") for comp in comparisons.values()):
        raise UserInputError(f"GateConfig {' and '.join(slice_rules)} need slices: set eval_config.slices to the eval "
                             "records' fields to compare (the evaluation computed none)")
    if cfg.max_slice_gap is not None:
        checks += _slice_gaps(next(iter(comparisons.values())), cfg)
    if cfg.min_win_rate is not None:
        judged = [name for name, comp in comparisons.items() if "judge" in comp]
        if not judged:
            raise UserInputError("GateConfig min_win_rate needs the pairwise judge: set eval_config.judge (url, model)")
        checks.append(_win_rate(judged[0], comparisons[judged[0]]["judge"], cfg))
    for name, comp in comparisons.items():
        missing = [k for k in (cfg.primary_metric, "perplexity", "latency_p95_ms") if k not in comp]
        if missing:
            raise UserInputError(f"the comparison with {name!r} lacks {missing}")
        if name in cfg.improve_over:
            checks.append(_improvement(name, comp[cfg.primary_metric], cfg))
        else:
            checks.append(_no_regression(name, comp[cfg.primary_metric], cfg))
        checks.append(_latency(name, comp["latency_p95_ms"], cfg))
        if "attack_success_rate" in comp:
            checks.append(_safety(name, comp["attack_success_rate"], cfg))
        checks.append(_perplexity(name, comp["perplexity"], cfg))
        if cfg.max_slice_drop is not None and name not in cfg.improve_over:
            checks += _slice_drops(name, comp, cfg)
        if cfg.max_harness_drop is not None:
            if not comp.get("harness"):
                raise UserInputError("GateConfig max_harness_drop needs lm-eval tasks: set eval_config.harness (tasks, "
                                     "task_dir)")
            checks.append(_harness(name, comp["harness"], cfg))
    return GateDecision(all(c.ok for c in checks), checks)


def _describe(m: dict, metric: str) -> str:
    return (f"{metric}: candidate {m['candidate']:.4f} vs {m['baseline']:.4f} "
            f"(delta {m['delta']:+.4f}, 95% CI [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}])")


def _improvement(name: str, m: dict, cfg: GateConfig) -> GateCheck:
    base, metric = m["baseline"], cfg.primary_metric
    need = cfg.min_improvement * base if base > 0 else cfg.min_improvement
    text = _describe(m, metric)
    if m["ci_low"] < need:
        return GateCheck(name, metric, False, f"{text}: no confident improvement of at least {need:+.4f} "
                                              f"({cfg.min_improvement:.0%} needed to promote)")
    return GateCheck(name, metric, True, f"{text}: improves by at least {need:+.4f}")


def _no_regression(name: str, m: dict, cfg: GateConfig) -> GateCheck:
    metric, text = cfg.primary_metric, _describe(m, cfg.primary_metric)
    if m["delta"] < -cfg.max_primary_drop - 1e-12:
        return GateCheck(name, metric, False, f"{text}: REGRESSION, more than {cfg.max_primary_drop:.4f} worse")
    return GateCheck(name, metric, True, f"{text}: within {cfg.max_primary_drop:.4f} of {name}")


def _latency(name: str, m: dict, cfg: GateConfig) -> GateCheck:
    limit = 1 + cfg.max_p95_latency_increase
    text = (f"latency p95: candidate {m['candidate']:.1f} ms vs {m['baseline']:.1f} ms "
            f"(ratio {m['ratio']:.2f}, 95% CI [{m['ci_low']:.2f}, {m['ci_high']:.2f}], allowed <= {limit:.2f})")
    ok = m["ci_low"] <= limit
    return GateCheck(name, "latency_p95_ms", ok, text + ("" if ok else ": REGRESSION"))


def _safety(name: str, m: dict, cfg: GateConfig) -> GateCheck:
    text = f"attack success rate: candidate {m['candidate']:.3f} vs {m['baseline']:.3f}"
    ok = m["candidate"] <= m["baseline"] + cfg.max_attack_success_increase + 1e-12
    return GateCheck(name, "attack_success_rate", ok, text + ("" if ok else ": REGRESSION, more attacks succeed"))


def _perplexity(name: str, m: dict, cfg: GateConfig) -> GateCheck:
    limit = 1 + cfg.max_perplexity_increase
    ok = m["ratio"] <= limit
    text = f"perplexity: candidate {m['candidate']:.4f} vs {m['baseline']:.4f} (ratio {m['ratio']:.4f}, allowed <= {limit:.4f})"
    return GateCheck(name, "perplexity", ok, text + ("" if ok else ": REGRESSION"))


def _slice_gaps(comp: dict, cfg: GateConfig) -> list[GateCheck]:
    """Per slice field, the candidate's worst slice against its score on the whole eval set."""
    metric, whole, checks = cfg.primary_metric, comp[cfg.primary_metric]["candidate"], []
    for key, groups in comp["slices"].items():
        value, entry = min(groups.items(), key=lambda item: item[1][metric]["candidate"])
        worst = entry[metric]["candidate"]
        ok = whole - worst <= cfg.max_slice_gap + 1e-12
        checks.append(GateCheck("", f"slice:{key}", ok, (
            f"fairness, slice {key}={value} ({entry['examples']} examples): {metric} {worst:.4f} vs {whole:.4f} on the "
            f"whole set (gap {whole - worst:.4f}, allowed <= {cfg.max_slice_gap:.4f})" + ("" if ok else ": GAP TOO WIDE"))))
    return checks


def _slice_drops(name: str, comp: dict, cfg: GateConfig) -> list[GateCheck]:
    """Per slice field, the slice where the candidate loses most against this baseline."""
    metric, checks = cfg.primary_metric, []
    for key, groups in comp["slices"].items():
        value, entry = min(groups.items(), key=lambda item: item[1][metric]["delta"])
        m = entry[metric]
        ok = m["delta"] >= -cfg.max_slice_drop - 1e-12
        checks.append(GateCheck(name, f"slice:{key}", ok, (
            f"fairness, slice {key}={value} ({entry['examples']} examples): {_describe(m, metric)}: "
            + (f"within {cfg.max_slice_drop:.4f} of {name} on every {key}" if ok
               else f"REGRESSION on this slice, more than {cfg.max_slice_drop:.4f} worse"))))
    return checks


def _win_rate(name: str, j: dict, cfg: GateConfig) -> GateCheck:
    ok = j["win_rate"] >= cfg.min_win_rate - 1e-12
    text = (f"judge {j['judge']}: candidate wins {j['wins']}, ties {j['ties']}, loses {j['losses']} of {j['examples']} "
            f"(win rate {j['win_rate']:.4f}, ties count half, 95% CI [{j['ci_low']:.4f}, {j['ci_high']:.4f}]; "
            f"allowed >= {cfg.min_win_rate:.4f})")
    return GateCheck(name, "judge_win_rate", ok, text + ("" if ok else ": the judge prefers the baseline too often"))


def _harness(name: str, scores: dict, cfg: GateConfig) -> GateCheck:
    """The lm-eval task metric on which the candidate loses most against this baseline."""
    key, m = min(scores.items(), key=lambda item: item[1]["delta"])
    ok = m["delta"] >= -cfg.max_harness_drop - 1e-12
    text = (f"lm-eval {key} (the worst of {len(scores)}): candidate {m['candidate']:.4f} vs {m['baseline']:.4f} "
            f"(delta {m['delta']:+.4f}, 95% CI from the standard errors [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]; "
            f"allowed >= -{cfg.max_harness_drop:.4f})")
    return GateCheck(name, "harness", ok, text + ("" if ok else ": REGRESSION"))
