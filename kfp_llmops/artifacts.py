"""Typed artifacts' metadata contracts.

KFP 2.17 accepts only ``system.*`` and ``google.*`` schema titles (``TypeError: Artifact schema_title must belong to
`system` or `google` namespace``), and a lightweight component's annotations cannot name a project class (the
executor runs the function's source without our imports). So a compiled model travels as ``system.Model`` (the
Kubeflow and Vertex AI UIs show it as a model) and its type is a metadata contract: ``schema: kfp_llmops.OnnxModel``
with the fields below, checked where it is written and where it is read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kfp_llmops.errors import UserInputError

ONNX_MODEL = "kfp_llmops.OnnxModel"
FORMATS = ("triton-onnx-repository", "onnx")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class OnnxModelMetadata:
    """What every compiled model carries: format, opset, precision, size, parity figures and latency."""

    format: str
    opset: int
    precision: str
    size_bytes: int
    max_abs_logit_diff: float
    greedy_identical: int
    greedy_prompts: int
    latency_ms: float
    variant: str
    kv_cache: bool = True
    schema: str = ONNX_MODEL
    schema_version: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.schema != ONNX_MODEL:
            problems.append(f"schema is {self.schema!r}, not {ONNX_MODEL!r}")
        if self.format not in FORMATS:
            problems.append(f"format {self.format!r} is not one of {FORMATS}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if not isinstance(self.opset, int) or self.opset < 13:
            problems.append(f"opset must be an integer >= 13, got {self.opset!r}")
        if not isinstance(self.size_bytes, int) or self.size_bytes <= 0:
            problems.append(f"size_bytes must be a positive integer, got {self.size_bytes!r}")
        if self.max_abs_logit_diff < 0 or self.latency_ms <= 0:
            problems.append("max_abs_logit_diff must be >= 0 and latency_ms > 0")
        if not 0 <= self.greedy_identical <= self.greedy_prompts:
            problems.append(f"greedy_identical ({self.greedy_identical}) must be within 0..greedy_prompts ({self.greedy_prompts})")
        if problems:
            raise UserInputError(f"{ONNX_MODEL} metadata: " + "; ".join(problems))

    def to_metadata(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict, *, where: str = "the model artifact") -> "OnnxModelMetadata":
        """Reads the contract back (KFP hands integers back as floats); names what is missing."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in metadata]
        if missing or metadata.get("schema") != ONNX_MODEL:
            raise UserInputError(f"{where} is not a compiled model ({ONNX_MODEL}): metadata lacks {missing or ['schema']}; "
                                 "pass an export_onnx output")
        values = {}
        for name, f in fields.items():
            if name not in metadata:
                continue
            value = metadata[name]
            if f.type in ("int",) and isinstance(value, float) and value.is_integer():
                value = int(value)
            if f.type == "bool":
                value = bool(value)
            values[name] = value
        return cls(**values)


class _FolderContract:
    """The metadata contract of a served folder: ``SCHEMA`` and ``FORMAT`` fixed, ``POSITIVE`` integer fields, the
    subclass's own ``problems()``; read back from KFP metadata (integers come back as floats there)."""

    SCHEMA = FORMAT = HINT = ""
    POSITIVE: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        return []

    def __post_init__(self) -> None:
        problems = []
        if self.schema != self.SCHEMA or self.format != self.FORMAT:
            problems.append(f"schema/format are {self.schema!r}/{self.format!r}, not {self.SCHEMA!r}/{self.FORMAT!r}")
        problems += self.problems()
        for name in self.POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if problems:
            raise UserInputError(f"{self.SCHEMA} metadata: " + "; ".join(problems))

    def to_metadata(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict, *, where: str = "the model artifact"):
        names = {f.name for f in dataclasses.fields(cls)}
        whole = (*cls.POSITIVE, "schema_version")
        values = {k: (int(v) if k in whole and isinstance(v, float) else v) for k, v in metadata.items() if k in names}
        try:
            return cls(**values)
        except TypeError as exc:
            raise UserInputError(f"{where}: not a {cls.SCHEMA} ({exc}){cls.HINT}") from None


HF_MODEL = "kfp_llmops.HfModel"
HF_FORMAT = "hf-safetensors"


@dataclass(frozen=True)
class HfModelMetadata(_FolderContract):
    """A merged model folder for Hugging Face serving runtimes: safetensors in ``dtype``, the tokenizer with the
    prompt format as its chat template."""

    dtype: str
    parameters: int
    size_bytes: int
    prompt_format: str
    format: str = HF_FORMAT
    schema: str = HF_MODEL
    schema_version: int = 1

    SCHEMA, FORMAT, POSITIVE = HF_MODEL, HF_FORMAT, ("parameters", "size_bytes")

    def problems(self) -> list[str]:
        return [] if self.dtype in ("fp32", "bf16", "fp16") else [f"dtype {self.dtype!r} is not fp32, bf16 or fp16"]


LORA_ADAPTER = "kfp_llmops.LoraAdapter"
LORA_FORMAT = "peft-lora-safetensors"


@dataclass(frozen=True)
class LoraAdapterMetadata(_FolderContract):
    """A LoRA adapter packaged for serving on a shared base (vLLM ``--lora-modules``, KServe's
    ``spec.model.lora.adapters``): peft safetensors, the prompt format it was trained in, and the base it needs,
    named by id and pinned revision (a hub commit, or a folder's ``sha256:`` digest)."""

    base_model: str
    base_model_revision: str
    rank: int
    size_bytes: int
    prompt_format: str
    format: str = LORA_FORMAT
    schema: str = LORA_ADAPTER
    schema_version: int = 1

    SCHEMA, FORMAT, POSITIVE, HINT = LORA_ADAPTER, LORA_FORMAT, ("rank", "size_bytes"), "; pass a package_adapter output"

    def problems(self) -> list[str]:
        return [] if self.base_model else ["base_model is empty: an adapter is served only on the base it was trained on"]


SERVED_SCHEMAS = {HF_MODEL: "hf", LORA_ADAPTER: "adapter", ONNX_MODEL: "onnx"}
# onnx: a Triton repository (protocol v2); hf: a merged Hugging Face folder; adapter: a LoRA adapter on a shared base
SERVING_FORMATS = ("onnx", "hf", "adapter")
CHAT_FORMATS = ("hf", "adapter")  # served over OpenAI-compatible chat


def serving_format_of(metadata: dict) -> str:
    """``onnx``, ``hf`` or ``adapter``: how a served artifact is served, from its schema."""
    return SERVED_SCHEMAS.get(metadata.get("schema"), "onnx")


def served_model_metadata(metadata: dict, where: str = ""):
    """The typed metadata of a model to serve: an ONNX repository, a merged Hugging Face folder or a LoRA adapter."""
    if metadata.get("schema") == HF_MODEL:
        return HfModelMetadata.from_metadata(metadata, where=where)
    if metadata.get("schema") == LORA_ADAPTER:
        return LoraAdapterMetadata.from_metadata(metadata, where=where)
    return OnnxModelMetadata.from_metadata(metadata, where=where)
