"""A fused forward for plain peft LoRA layers while training: the base output and the adapter in one GEMM epilogue.

peft computes ``base(x) + lora_B(lora_A(dropout(x))) * scaling``: a multiply over the whole output, an add into a
new tensor, and both again in the backward pass. For a plain LoRA layer (one adapter, no dropout, no DoRA or other
variant, a ``torch.nn.Linear`` base without hooks) the same sum is ``out.addmm_(x A^T, B^T, alpha=scaling)`` on the
base output: one GEMM that accumulates into it. The output is a fresh 2D tensor (an ``addmm_`` on a view of it would
make autograd copy the whole gradient). Anything else (dropout, variants, a quantized base, mixed dtypes outside
autocast, an adapter disabled, merged or switched at call time, extra arguments) runs peft's own forward.

Used by :class:`kfp_llmops.training.Trainer` while it trains; the layers get their own forward back afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


def eligible(layer) -> str | None:
    """The adapter name when ``layer`` is a plain peft LoRA ``Linear`` that the fused forward computes exactly."""
    import torch
    from peft.tuners.lora.layer import Linear as LoraLinear

    if type(layer) is not LoraLinear or type(layer.base_layer) is not torch.nn.Linear:
        return None
    if len(layer.lora_A) != 1 or layer.lora_variant or any(layer.use_dora.values()):
        return None
    (name,) = layer.lora_A.keys()
    if not isinstance(layer.lora_dropout[name], torch.nn.Identity) or layer.lora_B[name].bias is not None:
        return None
    return name


def _fused_forward(layer, name: str):
    import torch
    import torch.nn.functional as F

    peft_forward = type(layer).forward
    base, lora_a, lora_b = layer.base_layer, layer.lora_A[name], layer.lora_B[name]

    def forward(x, *args, **kwargs):
        autocast = torch.is_autocast_enabled(x.device.type)
        if (args or kwargs or layer.disable_adapters or layer.merged or layer.active_adapters != [name]
                or base._forward_hooks or base._forward_pre_hooks
                or (not autocast and not x.dtype == base.weight.dtype == lora_a.weight.dtype == lora_b.weight.dtype)):
            return peft_forward(layer, x, *args, **kwargs)
        flat = x.reshape(-1, x.shape[-1])
        out = F.linear(flat, base.weight, base.bias)  # a fresh 2D output (under autocast in its dtype)
        down = F.linear(flat, lora_a.weight)
        out.addmm_(down.to(out.dtype), lora_b.weight.t().to(out.dtype), alpha=layer.scaling[name])
        return out.view(*x.shape[:-1], out.shape[-1])

    return forward


@contextlib.contextmanager
def fused_lora(model, enabled: bool = True) -> Iterator[int]:
    """Within the block, every eligible LoRA layer of ``model`` runs the fused forward; yields how many. The layers'
    own forward is restored on the way out, also when the block raises."""
    patched = []
    if enabled:
        for module in model.modules():
            name = eligible(module)
            if name is not None and "forward" not in module.__dict__:
                module.forward = _fused_forward(module, name)
                patched.append(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
