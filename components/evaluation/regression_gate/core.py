"""The regression gate: promote the candidate only if it beats the baseline on every configured metric; no kfp."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_llmops.errors import ConfigError, UserInputError


@dataclass(frozen=True)
class GateConfig:
    """``min_exact_match_gain``: absolute gain the candidate needs over the baseline (0.01 = one point).
    ``max_perplexity_ratio``: the candidate's perplexity may be at most this times the baseline's."""

    min_exact_match_gain: float = 0.01
    max_perplexity_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_exact_match_gain <= 1.0:
            raise ConfigError(f"GateConfig.min_exact_match_gain must be in [-1, 1], got {self.min_exact_match_gain!r}")
        if self.max_perplexity_ratio <= 0:
            raise ConfigError(f"GateConfig.max_perplexity_ratio must be > 0, got {self.max_perplexity_ratio!r}")


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        head = "# Gate: PROMOTE" if self.passed else "# Gate: BLOCKED"
        return "\n".join([head, "", *(f"- {r}" for r in self.reasons)]) + "\n"


REQUIRED = ("candidate_exact_match", "baseline_exact_match", "candidate_perplexity", "baseline_perplexity")


def decide(scores: dict[str, float], cfg: GateConfig | None = None) -> GateDecision:
    cfg = cfg or GateConfig()
    missing = [k for k in REQUIRED if k not in scores]
    if missing:
        raise UserInputError(f"the evaluation metrics lack {missing}; got {sorted(scores)}")
    reasons, passed = [], True
    gain = scores["candidate_exact_match"] - scores["baseline_exact_match"]
    ok = gain >= cfg.min_exact_match_gain
    passed &= ok
    reasons.append(
        f"exact_match {'ok' if ok else 'REGRESSION'}: candidate {scores['candidate_exact_match']:.4f} vs baseline "
        f"{scores['baseline_exact_match']:.4f} (gain {gain:+.4f}, required >= {cfg.min_exact_match_gain:+.4f})"
    )
    ratio = scores["candidate_perplexity"] / scores["baseline_perplexity"]
    ok = ratio <= cfg.max_perplexity_ratio
    passed &= ok
    reasons.append(
        f"perplexity {'ok' if ok else 'REGRESSION'}: candidate {scores['candidate_perplexity']:.4f} vs baseline "
        f"{scores['baseline_perplexity']:.4f} (ratio {ratio:.4f}, allowed <= {cfg.max_perplexity_ratio:.4f})"
    )
    return GateDecision(bool(passed), reasons)
