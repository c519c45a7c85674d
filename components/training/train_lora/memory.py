"""A memory plan for LoRA training, made before any weight is loaded: the model is built on the meta device from its
``config.json`` (accelerate's ``init_empty_weights``, so parameter counts are exact, an 8B model in under a second),
the adapter is attached there, and weights, adapter, its gradients and optimizer state, and activations at the
training width are added up and compared with the device's memory. A plan that does not fit fails the step at once,
naming the figures and the settings that would fit, instead of after a GPU-hour of loading and an out-of-memory crash.

Activations follow Korthikanti et al. (2022), per layer and token: ``34 h`` bytes at 16-bit (h: hidden size), plus
``5 a s`` (a: attention heads, s: sequence width) only for eager attention, which materialises the score matrix (SDPA,
the default, does not); twice that in fp32. With gradient checkpointing only each layer's input (``2 h`` bytes) is
kept, plus one layer's full activations during its recomputation. The logits and their gradient are counted in fp32. Estimates, not measurements: they are meant to be on the safe side by ~10-20 %. Never imports kfp.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GIB = 1024**3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "nf4": 0.5}
NF4_BYTES = 4.127 / 8  # 4-bit weights and, double-quantized, their 8-bit block scales (QLoRA paper, sec. 3)
OVERHEAD = 1.10  # allocator fragmentation, CUDA context and kernels' workspaces


@dataclass(frozen=True)
class MemoryPlan:
    parameters: int
    lora_parameters: int
    weights_gib: float
    lora_gib: float
    optimizer_gib: float
    activations_gib: float
    device_gib: float
    tokens_per_micro_batch: int
    weight_dtype: str
    gradient_checkpointing: bool

    @property
    def total_gib(self) -> float:
        return (self.weights_gib + self.lora_gib + self.optimizer_gib + self.activations_gib) * OVERHEAD

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.device_gib

    def summary(self) -> str:
        size = f"{self.parameters / 1e9:.2f}B" if self.parameters >= 1e9 else f"{self.parameters / 1e6:.1f}M"
        return (f"{size} parameters in {self.weight_dtype}: weights {self.weights_gib:.1f} GiB, "
                f"LoRA {self.lora_parameters / 1e6:.1f}M parameters with gradients and AdamW state "
                f"{self.lora_gib + self.optimizer_gib:.1f} GiB, activations {self.activations_gib:.1f} GiB for "
                f"{self.tokens_per_micro_batch} tokens per micro-batch"
                f"{' (gradient checkpointing)' if self.gradient_checkpointing else ''}; total with "
                f"{OVERHEAD - 1:.0%} overhead {self.total_gib:.1f} GiB of {self.device_gib:.1f} GiB")


def count(config, target_modules, r: int) -> tuple[int, int, object]:
    """(base parameters, LoRA parameters, meta model) for a ``transformers`` config; no memory is allocated."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()  # tied input and output embeddings are one tensor (not tied by construction on meta)
    total = sum(p.numel() for p in model.parameters())
    lora = 0
    wanted = None if target_modules == "all-linear" else set(target_modules)
    output = model.get_output_embeddings()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is output:
            continue
        if wanted is None or name.rsplit(".", 1)[-1] in wanted:
            lora += r * (module.in_features + module.out_features)
    return total, lora, model


def _linear_parameters(model) -> int:
    import torch

    output = model.get_output_embeddings()
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not output)


def plan(config, train_cfg, *, device_gib: float, weight_dtype: str, width: int | None = None,
         activation_bytes: int = 2) -> MemoryPlan:
    """The plan for training ``train_cfg`` (a TrainConfig) on a model of ``config`` with base weights in
    ``weight_dtype`` on a device with ``device_gib`` GiB; ``activation_bytes`` 2 under bf16 autocast, 4 in fp32."""
    total, lora, meta = count(config, train_cfg.target_modules, train_cfg.r)
    if weight_dtype == "nf4":  # bitsandbytes quantizes the linear layers; embeddings, norms and the head stay 16-bit
        quantized = _linear_parameters(meta)
        weight_bytes = quantized * NF4_BYTES + (total - quantized) * 2
    else:
        weight_bytes = total * DTYPE_BYTES[weight_dtype]
    width = width or train_cfg.max_seq_length or (train_cfg.pack_length if train_cfg.pack_length > 0 else 0) or 2048
    tokens = train_cfg.batch_size * width  # one micro-batch: batch_size rows of the packed (or longest) width
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    act_bytes = activation_bytes
    eager = getattr(config, "_attn_implementation", None) == "eager"
    per_token_layer = (34 * hidden + (5 * heads * width if eager else 0)) * act_bytes / 2  # the paper's figure: 2 bytes
    if train_cfg.gradient_checkpointing:
        activations = tokens * (layers * 2 * hidden * act_bytes / 2 + per_token_layer)
    else:
        activations = tokens * layers * per_token_layer
    logits = tokens * config.vocab_size * 4 * 2  # fp32 logits and their gradient
    return MemoryPlan(
        parameters=total, lora_parameters=lora, weights_gib=weight_bytes / GIB,
        lora_gib=lora * 4 * 2 / GIB,  # fp32 LoRA weights and their gradients
        optimizer_gib=lora * 4 * 2 / GIB,  # AdamW: two fp32 moments
        activations_gib=(activations + logits) / GIB, device_gib=device_gib, tokens_per_micro_batch=tokens,
        weight_dtype=weight_dtype, gradient_checkpointing=train_cfg.gradient_checkpointing)


def suggestions(config, train_cfg, *, device_gib: float, weight_dtype: str, activation_bytes: int = 2,
                cuda: bool = True) -> list[str]:
    """Settings that would fit, the least disruptive first; on a GPU, 16-bit then 4-bit (QLoRA) base weights when
    no batch size fits at the weights' dtype."""
    def fits(cfg, dtype: str = weight_dtype) -> MemoryPlan:
        return plan(config, cfg, device_gib=device_gib, weight_dtype=dtype, activation_bytes=activation_bytes)

    out = []
    cfg = train_cfg
    if not cfg.gradient_checkpointing:
        cfg = dataclasses.replace(cfg, gradient_checkpointing=True)
        if (p := fits(cfg)).fits:
            return [f"gradient_checkpointing: true ({p.total_gib:.1f} GiB)"]
    batch, accumulation = cfg.batch_size, cfg.gradient_accumulation
    while batch > 1:
        batch, accumulation = max(1, batch // 2), accumulation * 2
        trial = dataclasses.replace(cfg, batch_size=batch, gradient_accumulation=accumulation)
        if (p := fits(trial)).fits:
            return [f"gradient_checkpointing: true, batch_size: {batch}, gradient_accumulation: {accumulation} "
                    f"(same examples per step; {p.total_gib:.1f} GiB)"]
    smallest = dataclasses.replace(cfg, batch_size=1)
    if cuda:
        for dtype, setting in (("bf16", "base_dtype: bf16"), ("nf4", "quantization: nf4 (QLoRA)")):
            if DTYPE_BYTES[dtype] >= DTYPE_BYTES[weight_dtype]:
                continue
            for batch in (train_cfg.batch_size, 8, 4, 2, 1):
                trial = dataclasses.replace(cfg, batch_size=min(batch, train_cfg.batch_size),
                                            gradient_accumulation=max(1, train_cfg.batch_size * train_cfg.gradient_accumulation
                                                                      // min(batch, train_cfg.batch_size)))
                if (p := fits(trial, dtype)).fits:
                    return [f"{setting}, gradient_checkpointing: true, batch_size: {trial.batch_size}, "
                            f"gradient_accumulation: {trial.gradient_accumulation} ({p.total_gib:.1f} GiB)"]
    out.append(f"a device with at least {fits(smallest).total_gib:.0f} GiB (batch_size 1, gradient checkpointing, "
               f"{weight_dtype} weights)")
    return out


def device_memory_gib(cuda: bool) -> float:
    """Free memory of the training device: the GPU's, or this machine's available RAM for CPU training."""
    if cuda:
        import torch

        free, _ = torch.cuda.mem_get_info()
        return free / GIB
    import psutil

    return psutil.virtual_memory().available / GIB


def check(base_model: str, train_cfg, *, cuda: bool, device_gib: float | None = None, log=print,
          weight_dtype: str = "fp32") -> MemoryPlan:
    """Plans before loading, for base weights in ``weight_dtype`` (fp32, bf16, fp16 or nf4); raises ConfigError
    naming the figures and what would fit when the plan does not fit."""
    from transformers import AutoConfig

    from kfp_llmops.errors import ConfigError
    from kfp_llmops.modeling import split_revision

    name, revision = split_revision(base_model)
    config = AutoConfig.from_pretrained(name, revision=revision)
    device = device_memory_gib(cuda) if device_gib is None else device_gib
    bf16 = cuda and train_cfg.resolved_precision(cuda, _bf16_supported()) == "bf16"
    act = 2 if bf16 else 4
    result = plan(config, train_cfg, device_gib=device, weight_dtype=weight_dtype, activation_bytes=act)
    log(f"memory plan ({'GPU' if cuda else 'CPU'}): {result.summary()}")
    if not result.fits:
        ways = suggestions(config, train_cfg, device_gib=device, weight_dtype=weight_dtype, activation_bytes=act,
                           cuda=cuda)
        raise ConfigError(f"LoRA training of {base_model} will not fit: {result.summary()}. What would fit: "
                          + "; or ".join(ways) + ". (TrainConfig.memory_check: false skips this check.)")
    return result


def _bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
