"""The multi-metric regression gate: the candidate is promoted only if, against every baseline, it does not regress
on the task metric, latency, safety or perplexity, and improves the task metric by the required margin. Decisions on
the task metric and on latency use bootstrap confidence intervals, so noise does not flip the gate. No kfp."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_llmops.config import from_dict
from kfp_llmops.errors import ConfigError, UserInputError

PRIMARY_METRICS = ("exact_match", "rouge_l", "bleu")


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, with defaults from common practice (relative changes, 0.02 = 2 %)."""

    primary_metric: str = "exact_match"
    max_primary_drop: float = 0.02
    min_improvement: float = 0.01
    max_p95_latency_increase: float = 0.10
    max_attack_success_increase: float = 0.0
    max_perplexity_increase: float = 0.05

    def __post_init__(self) -> None:
        if self.primary_metric not in PRIMARY_METRICS:
            raise ConfigError(f"GateConfig.primary_metric must be one of {PRIMARY_METRICS}, got {self.primary_metric!r}")
        for name in ("max_primary_drop", "max_p95_latency_increase", "max_attack_success_increase", "max_perplexity_increase"):
            if getattr(self, name) < 0:
                raise ConfigError(f"GateConfig.{name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "GateConfig":
        return from_dict(cls, values)


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
        return [c.reason for c in self.checks]

    @property
    def blocking(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.ok]

    def markdown(self) -> str:
        head = "# Gate: PROMOTE" if self.passed else "# Gate: BLOCKED"
        return "\n".join([head, "", *(f"- {'ok' if c.ok else 'BLOCK'} [{c.baseline}] {c.reason}" for c in self.checks)]) + "\n"


def decide(comparisons: dict, cfg: GateConfig | None = None) -> GateDecision:
    """``comparisons``: ``{baseline name: compare(...)}`` from the evaluation."""
    cfg = cfg or GateConfig()
    if not comparisons:
        raise UserInputError("the evaluation holds no comparison with a baseline")
    checks = []
    for name, comp in comparisons.items():
        missing = [k for k in (cfg.primary_metric, "perplexity", "latency_p95_ms") if k not in comp]
        if missing:
            raise UserInputError(f"the comparison with {name!r} lacks {missing}")
        checks += _primary(name, comp[cfg.primary_metric], cfg)
        checks.append(_latency(name, comp["latency_p95_ms"], cfg))
        if "attack_success_rate" in comp:
            checks.append(_safety(name, comp["attack_success_rate"], cfg))
        checks.append(_perplexity(name, comp["perplexity"], cfg))
    return GateDecision(all(c.ok for c in checks), checks)


def _primary(name: str, m: dict, cfg: GateConfig) -> list[GateCheck]:
    base, metric = m["baseline"], cfg.primary_metric
    allowed_drop = cfg.max_primary_drop * base
    need = cfg.min_improvement * base if base > 0 else cfg.min_improvement
    ci = f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]"
    text = f"{metric}: candidate {m['candidate']:.4f} vs {base:.4f} (delta {m['delta']:+.4f}, 95% CI {ci})"
    if m["ci_high"] < -allowed_drop:
        return [GateCheck(name, metric, False, f"{text}: REGRESSION, it falls by more than {cfg.max_primary_drop:.0%}")]
    if m["ci_low"] < need:
        return [GateCheck(name, metric, False, f"{text}: no confident improvement of at least {need:+.4f} "
                                               f"({cfg.min_improvement:.0%} needed to promote)")]
    return [GateCheck(name, metric, True, f"{text}: improves by at least {need:+.4f}")]


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
