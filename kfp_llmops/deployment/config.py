"""What a rollout is configured with: the canary schedule, the analysis rules, the shadow stage and how the Vertex AI
target deploys; validated where they are built. Never imports kfp."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kfp_llmops.artifacts import SERVING_FORMATS
from kfp_llmops.config import from_dict
from kfp_llmops.errors import ConfigError

STAGING_TARGETS = ("local", "kserve", "vertex")


@dataclass(frozen=True)
class CustomCheck:
    """A PromQL query for one revision (placeholders ``{revision}``, ``{namespace}``, ``{window}``); the canary's
    value may be at most ``max_ratio`` times the stable's."""

    name: str
    query: str
    max_ratio: float = 1.2

    def __post_init__(self) -> None:
        if not self.name or not self.query:
            raise ConfigError("CustomCheck needs a name and a query")
        if self.max_ratio <= 0:
            raise ConfigError(f"CustomCheck {self.name!r}: max_ratio must be > 0, got {self.max_ratio}")


@dataclass(frozen=True)
class AnalysisConfig:
    """Canary vs stable over one window. A ratio rule fails when ``canary > max_ratio * stable + slack``.

    - ``latency_slack_ms``: latency differences below it are noise (sub-millisecond models on a busy host).
    - ``error_rate_slack``: an absolute error-rate allowance (a stable revision with no errors at all would otherwise
      fail a canary with a single error at any ratio; 0 keeps it that strict).
    - ``min_requests``: fewer canary requests in a window make it inconclusive, which fails the step.
    """

    max_p95_latency_ratio: float = 1.2
    max_error_rate_ratio: float = 1.1
    latency_slack_ms: float = 5.0
    error_rate_slack: float = 0.0
    min_requests: int = 20
    custom: tuple[CustomCheck, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_p95_latency_ratio", "max_error_rate_ratio"):
            if getattr(self, name) < 1.0:
                raise ConfigError(f"AnalysisConfig.{name} must be >= 1.0, got {getattr(self, name)}")
        if self.latency_slack_ms < 0 or not 0 <= self.error_rate_slack < 1:
            raise ConfigError("AnalysisConfig: latency_slack_ms must be >= 0 and error_rate_slack in [0, 1)")
        if self.min_requests < 1:
            raise ConfigError(f"AnalysisConfig.min_requests must be >= 1, got {self.min_requests}")
        checks = tuple(c if isinstance(c, CustomCheck) else from_dict(CustomCheck, c, where="AnalysisConfig.custom")
                       for c in self.custom)
        object.__setattr__(self, "custom", checks)


@dataclass(frozen=True)
class VertexDeployConfig:
    """How the ``vertex`` target deploys the candidate next to stable on the endpoint."""

    machine_type: str = "g2-standard-8"
    accelerator_type: str = "NVIDIA_L4"
    accelerator_count: int = 1
    min_replicas: int = 1
    max_replicas: int = 2

    def __post_init__(self) -> None:
        if self.min_replicas < 1 or self.max_replicas < self.min_replicas or self.accelerator_count < 0:
            raise ConfigError("VertexDeployConfig: need 1 <= min_replicas <= max_replicas and accelerator_count >= 0")




@dataclass(frozen=True)
class ShadowConfig:
    """The shadow stage before the canary (off while ``requests`` is 0): the candidate serves no user; each of
    ``requests`` requests that stable answers is copied to it, and the two are compared on the same requests.

    - ``max_disagreement``: the largest share of requests on which the two may answer differently (1 - the mean
      agreement: the same next token for ``onnx``; the word-level similarity of the two replies for ``hf``). A
      fine-tune is meant to answer differently sometimes: set it for your task.
    - ``max_p95_latency_ratio`` (+ ``latency_slack_ms``): the candidate's p95 latency against stable's.
    - ``error_rate_slack``: how much the candidate's error rate may exceed stable's (absolute).
    """

    requests: int = 0
    max_disagreement: float = 0.5
    max_p95_latency_ratio: float = 1.5
    latency_slack_ms: float = 5.0
    error_rate_slack: float = 0.0

    def __post_init__(self) -> None:
        if self.requests < 0:
            raise ConfigError(f"ShadowConfig.requests must be >= 0 (0: no shadow stage), got {self.requests}")
        if not 0 <= self.max_disagreement <= 1:
            raise ConfigError(f"ShadowConfig.max_disagreement must be in [0, 1], got {self.max_disagreement}")
        if self.max_p95_latency_ratio < 1.0 or self.latency_slack_ms < 0 or not 0 <= self.error_rate_slack < 1:
            raise ConfigError("ShadowConfig: max_p95_latency_ratio must be >= 1, latency_slack_ms >= 0 and "
                              "error_rate_slack in [0, 1)")

    @property
    def enabled(self) -> bool:
        return self.requests > 0


@dataclass(frozen=True)
class RolloutConfig:
    """``schedule``: canary traffic percentages, rising, ending at 100. ``window_s``: analysis window per step
    (``local`` sends ``requests_per_step`` replayed requests instead). ``progress_deadline_s`` bounds each wait for
    readiness."""

    schedule: tuple[int, ...] = (5, 10, 25, 50, 100)
    window_s: float = 120.0
    progress_deadline_s: float = 600.0
    requests_per_step: int = 40
    serving_format: str = "onnx"  # onnx: Triton (protocol v2); hf: merged safetensors; adapter: LoRA on a shared base
    engine: str = "transformers"  # the local target's server for hf and adapter: transformers, or vllm (real vLLM)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    vertex: VertexDeployConfig = field(default_factory=VertexDeployConfig)

    def __post_init__(self) -> None:
        schedule = tuple(int(p) for p in self.schedule)
        if not schedule or any(not 0 < p <= 100 for p in schedule) or list(schedule) != sorted(set(schedule)) or schedule[-1] != 100:
            raise ConfigError(f"RolloutConfig.schedule must rise strictly within (0, 100] and end at 100, got {list(self.schedule)}")
        object.__setattr__(self, "schedule", schedule)
        if self.window_s <= 0 or self.progress_deadline_s <= 0:
            raise ConfigError("RolloutConfig: window_s and progress_deadline_s must be > 0")
        if self.serving_format not in SERVING_FORMATS:
            raise ConfigError(f"RolloutConfig.serving_format must be one of {SERVING_FORMATS}, got {self.serving_format!r}")
        if self.engine not in ("transformers", "vllm"):
            raise ConfigError(f"RolloutConfig.engine must be transformers or vllm, got {self.engine!r}")
        if self.requests_per_step < 1:
            raise ConfigError(f"RolloutConfig.requests_per_step must be >= 1, got {self.requests_per_step}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "RolloutConfig":
        values = dict(values or {})
        if "schedule" in values:
            values["schedule"] = tuple(values["schedule"])
        if isinstance(values.get("analysis"), dict) and "custom" in values["analysis"]:
            values["analysis"] = {**values["analysis"], "custom": tuple(values["analysis"]["custom"])}
        return from_dict(cls, values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StagingConfig:
    """``target`` "" (the default) skips the stage. ``inference_service`` defaults to ``<model name>-staging``."""

    target: str = ""
    namespace: str = "kfp-llmops-staging"
    inference_service: str = ""
    vertex_endpoint: str = ""
    prompts: int = 8
    min_match: float = 0.0
    max_p95_ms: float = 0.0
    progress_deadline_s: float = 900.0

    def __post_init__(self) -> None:
        if self.target and self.target not in STAGING_TARGETS:
            raise ConfigError(f"StagingConfig.target must be '' (no staging) or one of {STAGING_TARGETS}, got {self.target!r}")
        if self.prompts < 1:
            raise ConfigError(f"StagingConfig.prompts must be >= 1, got {self.prompts}")
        if not 0 <= self.min_match <= 1:
            raise ConfigError(f"StagingConfig.min_match must be in [0, 1], got {self.min_match}")
        if self.max_p95_ms < 0 or self.progress_deadline_s <= 0:
            raise ConfigError("StagingConfig: max_p95_ms must be >= 0 (0: no limit) and progress_deadline_s > 0")
        if self.target == "vertex" and not self.vertex_endpoint.startswith("projects/"):
            raise ConfigError("StagingConfig.vertex_endpoint must be projects/P/locations/L/endpoints/E for the vertex "
                              f"target, got {self.vertex_endpoint!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.target)

    @classmethod
    def from_dict(cls, values: dict | None) -> "StagingConfig":
        return from_dict(cls, values)
