"""Attention per document for packed training rows, through transformers' own attention interface.

A packed row holds several documents; :func:`kfp_llmops.modeling.collate_packed` restarts the position ids at each
one, and the model builds a block-diagonal causal mask from them. With that mask, torch's SDPA computes every query
against every key of the row (and transformers repeats the grouped KV heads first), although most of those pairs are
masked: on a row of two 125-token documents, 4x the causal work. Here each document (and each row's padded tail) is
one causal SDPA call on its own span of the flattened batch, with the grouped KV heads as they are: the same sums over
the same keys.

The spans come as the standard packed-sequence arguments ``cu_seq_lens_q`` / ``cu_seq_lens_k`` (cumulative lengths
over the flattened ``batch x width`` positions, what transformers' flash-attention path reads). The function is
registered in ``AttentionInterface`` under :data:`NAME` and falls back to transformers' ``sdpa`` wherever it would not
be exact: no spans, a KV cache, a sliding window, a soft cap, a position bias, non-causal attention.

Used by :class:`kfp_llmops.training.Trainer` (:func:`packed_attention`) for models whose attention is ``sdpa``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

NAME = "kfp_llmops_packed_sdpa"


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    batch, heads, width, dim = query.shape
    if (cu is None or cu_k is None or (cu_k is not cu and not torch.equal(cu_k, cu)) or key.shape[2] != width
            or not getattr(module, "is_causal", True) or kwargs.get("sliding_window")
            or kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None
            or kwargs.get("s_aux") is not None or int(cu[-1]) != batch * width):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    lengths = torch.diff(cu).tolist()

    def spans(x):  # (batch, heads, width, dim) -> one (1, heads, length, dim) view per span
        flat = x.transpose(1, 2).reshape(batch * width, x.shape[1], x.shape[3])
        return [s.transpose(0, 1).unsqueeze(0) for s in torch.split(flat, lengths)]

    gqa = key.shape[1] != heads
    outs = [F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa)
            [0].transpose(0, 1) for q, k, v in zip(spans(query), spans(key), spans(value))]
    return torch.cat(outs).view(batch, width, heads, dim), None  # the (batch, width, heads, dim) layout sdpa returns


def register() -> None:
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    # Eager also inside a torch.compile'd layer: its spans are a Python list that varies per batch.
    AttentionInterface.register(NAME, torch.compiler.disable(packed_sdpa))
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # masks as for sdpa: what the fallback reads


def _configs(model):
    seen = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation_internal"):
            seen[id(config)] = config
    return list(seen.values())


@contextlib.contextmanager
def packed_attention(model, enabled: bool = True) -> Iterator[bool]:
    """Within the block, a model whose attention is ``sdpa`` (every config of it) runs :func:`packed_sdpa`; yields
    whether it does (then batches should carry ``cu_seq_lens_q`` / ``cu_seq_lens_k``). Restored on the way out."""
    configs = _configs(model) if enabled else []
    active = bool(configs) and all(c._attn_implementation == "sdpa" for c in configs)
    if active:
        register()
        for c in configs:
            c._attn_implementation = NAME
    try:
        yield active
    finally:
        if active:
            for c in configs:
                c._attn_implementation = "sdpa"
