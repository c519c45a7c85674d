"""The typed configs of steps that more than the step reads: the step itself, and the run's preflight check (the
``check-configs`` step, and the CLI before it submits), which names every mistake before any work. Validated where
they are built. Never imports kfp."""

from __future__ import annotations

from dataclasses import dataclass

from kfp_llmops.config import from_dict
from kfp_llmops.errors import ConfigError

EXPORTERS = {"torchscript": 18, "torch.export": 23, "onnxruntime-genai": None}  # each exporter and its default opset
# (onnxruntime-genai's builder picks its own)
PRIMARY_METRICS = ("exact_match", "rouge_l", "bleu", "sentence_bleu")


@dataclass(frozen=True)
class EvalConfig:
    max_new_tokens: int = 32
    max_length: int = 256
    batch_size: int = 32
    golden_prompts: int = 20
    latency_requests: int = 32
    latency_tokens: int = 16
    throughput_batch: int = 8
    price_per_hour: float = 2.0
    safety: bool = True
    bootstrap_resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_length", "batch_size", "latency_requests", "latency_tokens", "throughput_batch",
                     "bootstrap_resamples"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"EvalConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.golden_prompts < 0 or self.price_per_hour < 0:
            raise ConfigError("EvalConfig.golden_prompts and price_per_hour must be >= 0")

    @classmethod
    def from_dict(cls, values: dict | None) -> "EvalConfig":
        return from_dict(cls, values)


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, with defaults from common practice.

    ``min_improvement``: relative (0.01 = 1 % of the baseline's score; absolute when that score is 0), against the
    baselines in ``improve_over``. ``max_primary_drop``: absolute, in the primary metric's units (0.02 = 2 points of
    exact match), against every other baseline. The other limits are relative (0.10 = 10 %) or absolute rates."""

    primary_metric: str = "exact_match"
    improve_over: tuple[str, ...] = ("base",)
    min_improvement: float = 0.01
    max_primary_drop: float = 0.02
    max_p95_latency_increase: float = 0.10
    max_attack_success_increase: float = 0.0
    max_perplexity_increase: float = 0.05

    def __post_init__(self) -> None:
        if self.primary_metric not in PRIMARY_METRICS:
            raise ConfigError(f"GateConfig.primary_metric must be one of {PRIMARY_METRICS}, got {self.primary_metric!r}")
        improve = (self.improve_over,) if isinstance(self.improve_over, str) else self.improve_over
        if not isinstance(improve, (list, tuple)) or not all(isinstance(x, str) and x for x in improve):
            raise ConfigError(f"GateConfig.improve_over must be a list of baseline names, got {self.improve_over!r}")
        object.__setattr__(self, "improve_over", tuple(improve))
        for name in ("min_improvement", "max_primary_drop", "max_p95_latency_increase", "max_attack_success_increase",
                     "max_perplexity_increase"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"GateConfig.{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "GateConfig":
        return from_dict(cls, values)


@dataclass(frozen=True)
class ApprovalConfig:
    """``required``: wait for a person's decision; ``timeout_s``: then reject (default a day); ``poll_s``: how often the
    registry is read."""

    required: bool = False
    timeout_s: float = 86400.0
    poll_s: float = 30.0

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.poll_s <= 0:
            raise ConfigError(f"ApprovalConfig: timeout_s and poll_s must be > 0, got {self.timeout_s}, {self.poll_s}")
