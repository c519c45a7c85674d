"""The typed configs of steps that more than the step reads: the step itself, and the run's preflight check (the
``check-configs`` step, and the CLI before it submits), which names every mistake before any work. Validated where
they are built. Never imports kfp."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from kfp_llmops.config import from_dict
from kfp_llmops.errors import ConfigError
from kfp_llmops.modeling import BASE_DTYPES, QUANTIZATIONS

EXPORTERS = {"torchscript": 18, "torch.export": 23, "onnxruntime-genai": None}  # each exporter and its default opset
# (onnxruntime-genai's builder picks its own)
PRIMARY_METRICS = ("exact_match", "rouge_l", "bleu", "sentence_bleu")


def _names(config, name: str, what: str) -> tuple[str, ...]:
    """``config.<name>`` as a tuple of non-empty strings (one string alone is a list of one), stored back on the frozen
    config; anything else is named as ``what``."""
    value = getattr(config, name)
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(s, str) and s for s in names):
        raise ConfigError(f"{type(config).__name__}.{name} must be a list of {what}, got {value!r}")
    object.__setattr__(config, name, tuple(names))
    return tuple(names)


JUDGE_PROMPT = """You compare two answers to the same request. Reply with one word: A if answer A is better, B if answer B
is better, tie if neither is.

Request:
{instruction}

Answer A:
{answer_a}

Answer B:
{answer_b}

Better answer (A, B or tie):"""


@dataclass(frozen=True)
class JudgeConfig:
    """The pairwise judge (off while ``url`` is empty): any OpenAI-compatible chat endpoint (``url``: its base, e.g.
    ``https://api.openai.com/v1`` or a KServe ``.../openai/v1``) decides, per eval example, whether the candidate's or
    the ``against`` baseline's answer is better, in both orders (``both_orders``) to cancel position bias. The API key,
    if one is needed, comes from the environment variable ``api_key_env`` (never a parameter). ``human_labels``: a
    JSONL file of ``{instruction, answer_a, answer_b, label: A|B|tie}`` the judge also labels, for its agreement rate.
    ``prompt``: a template with ``{instruction}``, ``{answer_a}``, ``{answer_b}`` (and optionally ``{reference}``)."""

    url: str = ""
    model: str = ""
    against: str = "production"  # the baseline compared; the base model when there is no production version
    prompt: str = JUDGE_PROMPT
    both_orders: bool = True
    max_examples: int = 50
    api_key_env: str = ""
    timeout_s: float = 60.0
    human_labels: str = ""

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"JudgeConfig.url must be an http(s) URL (the API's base, e.g. .../v1), got {self.url!r}")
        if self.url and not self.model:
            raise ConfigError("JudgeConfig.model: name the judge model the endpoint serves")
        missing = [k for k in ("{instruction}", "{answer_a}", "{answer_b}") if k not in self.prompt]
        if missing:
            raise ConfigError(f"JudgeConfig.prompt must contain {missing}")
        if self.max_examples < 1 or self.timeout_s <= 0:
            raise ConfigError("JudgeConfig.max_examples must be >= 1 and timeout_s > 0")

    @property
    def enabled(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True)
class HarnessConfig:
    """lm-evaluation-harness tasks (off while ``tasks`` is empty), read from ``task_dir``: a folder of lm-eval task
    YAML files whose data files (JSONL, CSV, Parquet) sit beside them, relative to the folder; nothing comes from a hub.
    Each task runs against the candidate and every baseline (the same merged models the rest of the evaluation uses);
    ``num_fewshot``, ``limit`` (examples per task), ``apply_chat_template`` as lm-eval's own options."""

    tasks: tuple[str, ...] = ()
    task_dir: str = ""
    num_fewshot: int | None = None
    limit: int | None = None
    batch_size: int = 8
    apply_chat_template: bool = False

    def __post_init__(self) -> None:
        tasks = _names(self, "tasks", "task names")
        if tasks and not self.task_dir:
            raise ConfigError("HarnessConfig.task_dir: the folder of the tasks' YAML files (tasks are never fetched from a hub)")
        for name in ("num_fewshot", "limit"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                object.__setattr__(self, name, int(value))  # kfp.local sends integers as floats
            elif value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"HarnessConfig.{name} must be an integer >= 0 or null, got {value!r}")
        if self.batch_size < 1:
            raise ConfigError(f"HarnessConfig.batch_size must be >= 1, got {self.batch_size!r}")


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
    slices: tuple[str, ...] = ()  # fields of the eval records: every metric per value of each, with its interval
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # a pairwise judge of candidate against production
    harness: HarnessConfig = field(default_factory=HarnessConfig)  # lm-evaluation-harness tasks from a local folder

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_length", "batch_size", "latency_requests", "latency_tokens", "throughput_batch",
                     "bootstrap_resamples"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"EvalConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.golden_prompts < 0 or self.price_per_hour < 0:
            raise ConfigError("EvalConfig.golden_prompts and price_per_hour must be >= 0")
        _names(self, "slices", "field names of the eval records")

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
    max_slice_gap: float | None = None  # fairness: the primary metric of the worst slice at most this far below the whole
    max_slice_drop: float | None = None  # fairness: no slice's primary metric more than this below production's
    min_win_rate: float | None = None  # the pairwise judge: the candidate's win rate (ties count half) at least this
    max_harness_drop: float | None = None  # lm-eval: no task metric more than this below any baseline's (absolute)

    def __post_init__(self) -> None:
        if self.primary_metric not in PRIMARY_METRICS:
            raise ConfigError(f"GateConfig.primary_metric must be one of {PRIMARY_METRICS}, got {self.primary_metric!r}")
        _names(self, "improve_over", "baseline names")
        for name in ("min_improvement", "max_primary_drop", "max_p95_latency_increase", "max_attack_success_increase",
                     "max_perplexity_increase"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"GateConfig.{name} must be a number >= 0, got {value!r}")
        for name in ("max_slice_gap", "max_slice_drop", "min_win_rate", "max_harness_drop"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"GateConfig.{name} must be a number >= 0 (or null: not checked), got {value!r}")

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


# --- screening of training rows (validate_dataset) ------------------------------------------------------------

PII_KINDS = ("email", "phone", "credit_card", "ip_address", "secret")
ACTION_SEVERITY = {"fail": "critical", "report": "warning", "drop": "info", "mask": "info"}


def _check_action(name: str, action: str, allowed: tuple[str, ...]) -> None:
    if action not in allowed:
        raise ConfigError(f"ScreeningConfig.{name}.action must be one of {allowed}, got {action!r}")


@dataclass(frozen=True)
class PiiConfig:
    enabled: bool = True
    action: str = "fail"
    kinds: tuple[str, ...] = PII_KINDS
    phone_region: str = "US"

    def __post_init__(self) -> None:
        _check_action("pii", self.action, ("fail", "drop", "mask", "report"))
        unknown = sorted(set(self.kinds) - set(PII_KINDS))
        if unknown:
            raise ConfigError(f"ScreeningConfig.pii.kinds: unknown {unknown}; known are {list(PII_KINDS)}")


@dataclass(frozen=True)
class DuplicatesConfig:
    enabled: bool = True
    action: str = "drop"
    threshold: float = 0.85
    num_perm: int = 128
    shingle_size: int = 3

    def __post_init__(self) -> None:
        _check_action("duplicates", self.action, ("fail", "drop", "report"))
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"ScreeningConfig.duplicates.threshold must be in (0, 1], got {self.threshold!r}")


@dataclass(frozen=True)
class ContaminationConfig:
    enabled: bool = True
    action: str = "drop"
    ngram: int = 13

    def __post_init__(self) -> None:
        _check_action("contamination", self.action, ("fail", "drop", "report"))
        if self.ngram < 1:
            raise ConfigError(f"ScreeningConfig.contamination.ngram must be >= 1, got {self.ngram!r}")


@dataclass(frozen=True)
class DriftConfig:
    enabled: bool = True
    action: str = "report"
    threshold: float = 0.2

    def __post_init__(self) -> None:
        _check_action("drift", self.action, ("fail", "report"))
        if self.threshold <= 0:
            raise ConfigError(f"ScreeningConfig.drift.threshold must be > 0, got {self.threshold!r}")


@dataclass(frozen=True)
class ScreeningConfig:
    pii: PiiConfig = field(default_factory=PiiConfig)
    duplicates: DuplicatesConfig = field(default_factory=DuplicatesConfig)
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)

    @classmethod
    def from_dict(cls, values: dict | None) -> "ScreeningConfig":
        return from_dict(cls, values)


# --- production monitoring (monitor_model) -----------------------------------------------------------------------

ACTIONS = ("rollback", "retrain")
# common refusal openings of instruction-tuned models; replace them in config for your model and language
REFUSALS = (r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:'|no)t|i cannot|i won'?t|i'?m (?:not able|unable)|"
            r"i am (?:not able|unable)|as an ai\b)",)
BACKENDS = ("kfp", "vertex")  # where a retraining run starts


@dataclass(frozen=True)
class MonitorConfig:
    max_input_psi: float = 0.2  # > 0.2 is commonly read as significant drift
    max_output_psi: float = 0.2
    max_refusal_rate_increase: float = 0.05  # absolute: served refusal rate minus the training responses'
    slo_p95_ms: float = 0.0  # 0: no latency SLO
    slo_error_rate: float = 0.01
    min_requests: int = 50  # fewer logged requests: inconclusive, nothing is decided
    on_breach: tuple[str, ...] = ()  # "rollback" (production back to previous), "retrain" (start a training run)
    refusal_patterns: tuple[str, ...] = REFUSALS
    window_s: float = 3600.0  # the Prometheus window of the SLO queries
    slices: tuple[str, ...] = ()  # request fields (top level or in "metadata") to report the traffic by, as evaluated

    def __post_init__(self) -> None:
        _names(self, "slices", "request field names")
        actions = tuple(self.on_breach)
        unknown = sorted(set(actions) - set(ACTIONS))
        if unknown:
            raise ConfigError(f"MonitorConfig.on_breach: unknown action(s) {unknown}; known: {list(ACTIONS)}")
        object.__setattr__(self, "on_breach", actions)
        for name in ("max_input_psi", "max_output_psi", "max_refusal_rate_increase", "slo_p95_ms", "window_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"MonitorConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.slo_error_rate <= 1 or self.min_requests < 1:
            raise ConfigError("MonitorConfig: slo_error_rate must be in [0, 1] and min_requests >= 1")
        patterns = tuple(self.refusal_patterns)
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ConfigError(f"MonitorConfig.refusal_patterns: {p!r} is not a regular expression ({exc})") from None
        object.__setattr__(self, "refusal_patterns", patterns)

    @classmethod
    def from_dict(cls, values: dict | None) -> "MonitorConfig":
        values = dict(values or {})
        for key in ("on_breach", "refusal_patterns", "slices"):
            if key in values and isinstance(values[key], list):
                values[key] = tuple(values[key])
        return from_dict(cls, values)


@dataclass(frozen=True)
class RetrainConfig:
    """Where and with what a retraining run starts. ``arguments``: the pipeline's parameters (``train_data`` pointing
    at the newest data, ...)."""

    backend: str = "kfp"
    pipeline: str = "finetune-and-rollout"
    host: str = ""  # kfp: the Kubeflow Pipelines API
    experiment: str = "kfp-llmops-retraining"
    project: str = ""  # vertex
    location: str = "us-central1"
    pipeline_root: str = ""  # vertex: gs://...
    api_endpoint: str = ""  # vertex: another API endpoint (an emulator)
    arguments: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"RetrainConfig.backend must be one of {BACKENDS} (on kfp.local, start `kfp-llmops run` "
                              f"yourself), got {self.backend!r}")
        if self.backend == "vertex" and not (self.project and self.pipeline_root.startswith("gs://")):
            raise ConfigError("RetrainConfig: the vertex backend needs project and a gs:// pipeline_root")
        if not isinstance(self.arguments, dict):
            raise ConfigError("RetrainConfig.arguments must be a mapping of pipeline parameters")

    @classmethod
    def from_dict(cls, values: dict | None) -> "RetrainConfig":
        return from_dict(cls, values)


# --- training (train_lora) ----------------------------------------------------------------------------------------

PRECISIONS = ("auto", "fp32", "bf16")
STRATEGIES = ("ddp", "fsdp")
PLATFORMS = ("kubeflow", "vertex")  # where a Trainer job runs


@dataclass(frozen=True)
class TrainConfig:
    """LoRA training settings; built from a dict (a pipeline parameter) with unknown fields rejected.

    ``pack_length``: row width for sequence packing (0: padded batches, -1: the batch's longest example).
    ``max_seq_length``: examples are cut to this many tokens (0: as prepared). ``precision``: ``auto`` (bf16 on a GPU
    that has it, fp32 on CPU), ``fp32`` or ``bf16`` (autocast). ``gradient_checkpointing``: recompute activations in
    the backward pass (less memory, ~30 % more compute). ``eval_every``: validation loss every N steps (0: at the end
    only); ``early_stopping_patience``: stop after that many evaluations without improvement and keep the best
    weights (0: never). ``use_liger``: Liger's fused kernels (liger-kernel must be installed; GPU).
    ``base_dtype``: the frozen base weights' dtype, ``auto`` (bf16 on a GPU that has it, fp16 on older GPUs, fp32 on
    CPU), ``fp32``, ``bf16`` or ``fp16``; LoRA weights and their optimizer state stay fp32. ``quantization``: ``nf4``
    loads the base in 4-bit NF4 with double quantization (QLoRA, bitsandbytes, CUDA only; compute in ``base_dtype``).
    ``torch_compile``: each decoder layer through ``torch.compile`` (the same losses; the first step compiles, tens of
    seconds, later ones are faster: for long runs). Needs a C/C++ compiler where it runs (the image has g++).
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 3e-3
    max_steps: int = 300
    batch_size: int = 32
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_dir: str = ""
    checkpoint_every: int = 50
    pack_length: int = 512
    gradient_accumulation: int = 1
    epochs: float = 0.0
    max_seq_length: int = 0
    precision: str = "auto"
    gradient_checkpointing: bool = False
    eval_every: int = 0
    early_stopping_patience: int = 0
    use_liger: bool = False
    memory_check: bool = True  # plan memory from config.json before loading, and fail fast when it will not fit
    base_dtype: str = "auto"
    quantization: str = "none"
    strategy: str = "ddp"  # with several processes: ddp (replicated) or fsdp (sharded, torch FSDP2)
    torch_compile: bool = False

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "max_steps", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"TrainConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.learning_rate <= 0:
            raise ConfigError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate!r}")
        if not isinstance(self.gradient_accumulation, int) or self.gradient_accumulation < 1:
            raise ConfigError(f"TrainConfig.gradient_accumulation must be an integer >= 1, got {self.gradient_accumulation!r}")
        if self.epochs < 0:
            raise ConfigError(f"TrainConfig.epochs must be >= 0 (0: use max_steps), got {self.epochs!r}")
        if self.pack_length < -1:
            raise ConfigError(f"TrainConfig.pack_length must be -1 (longest in batch), 0 (no packing) or > 0, got {self.pack_length!r}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"TrainConfig.checkpoint_every must be >= 0, got {self.checkpoint_every!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not self.target_modules:
            raise ConfigError("TrainConfig.target_modules must be 'all-linear' or a non-empty list of module names")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("max_seq_length", "eval_every", "early_stopping_patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.base_dtype not in BASE_DTYPES:
            raise ConfigError(f"TrainConfig.base_dtype must be one of {BASE_DTYPES}, got {self.base_dtype!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"TrainConfig.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"TrainConfig.quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.early_stopping_patience and not self.eval_every:
            raise ConfigError("TrainConfig.early_stopping_patience needs eval_every > 0 (evaluations to compare)")

    def resolved_precision(self, cuda: bool, bf16_supported: bool) -> str:
        """``auto``: bf16 on a GPU that supports it, else fp32 (CPU)."""
        if self.precision == "auto":
            return "bf16" if cuda and bf16_supported else "fp32"
        return self.precision

    @classmethod
    def from_dict(cls, values: dict | None) -> "TrainConfig":
        return from_dict(cls, values)

    @classmethod
    def from_yaml(cls, path: str) -> "TrainConfig":
        import yaml

        try:
            values = yaml.safe_load(open(path, encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the training config ({exc})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: the training config must be a mapping of TrainConfig fields")
        return cls.from_dict(values)

    def total_steps(self, train_rows: int) -> int:
        """``max_steps``, or, when ``epochs`` > 0, the optimizer steps that many passes over ``train_rows`` take."""
        if self.epochs <= 0:
            return self.max_steps
        per_step = self.batch_size * self.gradient_accumulation
        return max(1, math.ceil(self.epochs * train_rows / per_step))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainerJobSpec:
    num_nodes: int
    shared_dir: str
    namespace: str = ""  # Kubeflow: where the TrainJob goes
    procs_per_node: int = 1
    gpus_per_node: int = 1
    cpu: str = "8"
    memory: str = "32Gi"
    runtime: str = "torch-distributed"
    runtime_kind: str = "ClusterTrainingRuntime"
    image: str = ""
    timeout_s: float = 24 * 3600
    poll_s: float = 30.0
    # Vertex AI (the pipeline compiled for vertex trains there): machines of the chief and the workers
    machine_type: str = "g2-standard-24"
    accelerator_type: str = "NVIDIA_L4"
    project: str = ""  # default: the pipeline job's project
    location: str = ""  # default: the pipeline job's region
    staging_bucket: str = ""  # gs://... for the job's own files; default: the bucket of shared_dir
    service_account: str = ""

    def __post_init__(self) -> None:
        if self.num_nodes < 1 or self.procs_per_node < 1 or self.gpus_per_node < 0:
            raise ConfigError("TrainerJobSpec: num_nodes and procs_per_node must be >= 1, gpus_per_node >= 0")
        if not self.shared_dir.startswith("/"):
            raise ConfigError(f"TrainerJobSpec.shared_dir must be an absolute path on a volume every node mounts "
                              f"(a ReadWriteMany PVC), got {self.shared_dir!r}")
        if self.runtime_kind not in ("ClusterTrainingRuntime", "TrainingRuntime"):
            raise ConfigError(f"TrainerJobSpec.runtime_kind must be ClusterTrainingRuntime or TrainingRuntime, got {self.runtime_kind!r}")
