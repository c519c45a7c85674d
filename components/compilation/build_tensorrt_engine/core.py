"""Builds a TensorRT engine from the exported ONNX decoder with the TensorRT Python API; never imports kfp.

Needs an NVIDIA GPU and the ``tensorrt`` package (the GPU runtime image); anywhere else it fails at once, saying so.
Optimization profiles cover batch 1..max_batch, new tokens 1..max_sequence and past 0..max_sequence positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfp_llmops.errors import ConfigError, UserInputError

PRECISIONS = ("fp16", "bf16", "fp32")


@dataclass(frozen=True)
class TensorRTConfig:
    precision: str = "fp16"
    max_batch: int = 8
    opt_batch: int = 1
    max_sequence: int = 512
    opt_sequence: int = 128
    workspace_gib: float = 4.0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TensorRTConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not (1 <= self.opt_batch <= self.max_batch and 1 <= self.opt_sequence <= self.max_sequence):
            raise ConfigError("TensorRTConfig: need 1 <= opt_batch <= max_batch and 1 <= opt_sequence <= max_sequence")


def require_gpu() -> None:
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if not available:
        raise UserInputError("build_tensorrt_engine needs an NVIDIA GPU and this node has none (CUDA is not available); "
                             "run the step on a GPU node (the pipeline sets an accelerator for it)")


def profiles(input_shapes: dict[str, list], cfg: TensorRTConfig) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) shape per input: batch on axis 0; ``input_ids`` new tokens, ``attention_mask`` total
    positions, ``past_key_values.*`` past positions on axis 2 (which may be empty)."""
    out = {}
    for name, shape in input_shapes.items():
        if name == "input_ids":
            out[name] = ((1, 1), (cfg.opt_batch, cfg.opt_sequence), (cfg.max_batch, cfg.max_sequence))
        elif name == "attention_mask":
            out[name] = ((1, 1), (cfg.opt_batch, cfg.opt_sequence), (cfg.max_batch, 2 * cfg.max_sequence))
        elif name.startswith("past_key_values."):
            heads, dim = int(shape[1]), int(shape[3])
            out[name] = ((1, heads, 0, dim), (cfg.opt_batch, heads, cfg.opt_sequence, dim), (cfg.max_batch, heads, cfg.max_sequence, dim))
        else:
            raise UserInputError(f"unexpected model input {name!r}: not one of our ONNX decoder exports")
    return out


def build_engine(onnx_path: str | Path, engine_path: str | Path, cfg: TensorRTConfig | None = None) -> dict:
    cfg = cfg or TensorRTConfig()
    require_gpu()
    try:
        import tensorrt as trt
    except ImportError:
        raise UserInputError("the tensorrt Python package is not installed in this image; use the GPU runtime image") from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserInputError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gib * (1 << 30)))
    if cfg.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif cfg.precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    shapes = {network.get_input(i).name: list(network.get_input(i).shape) for i in range(network.num_inputs)}
    for name, (lo, opt, hi) in profiles(shapes, cfg).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise UserInputError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above)")
    Path(engine_path).write_bytes(bytes(engine))
    return {"precision": cfg.precision, "size_bytes": Path(engine_path).stat().st_size, "tensorrt": trt.__version__}
