"""Merges a LoRA adapter into its base and saves the model as served by Hugging Face runtimes (KServe's huggingface
runtime with vLLM, TGI, ``transformers``): safetensors in the serving dtype, the tokenizer with the prompt format as
its chat template, and a generation config that stops at the format's end-of-turn token. Never imports kfp."""

from __future__ import annotations

import json
from pathlib import Path

from kfp_llmops.errors import ConfigError

SERVING_DTYPES = ("bf16", "fp16", "fp32")
INFO_FILE = "merge.json"


def merge_to_folder(base_model: str, adapter_dir: str, out_dir: str | Path, dtype: str = "bf16") -> dict:
    """Writes the merged model folder; returns what the lineage records (dtype, parameters, bytes, weights digest,
    prompt format). The merge itself is done in fp32 (exact), then cast to ``dtype``."""
    import torch

    from kfp_llmops.adapters import merged_model, weights_sha256
    from kfp_llmops.modeling import load_tokenizer
    from kfp_llmops.prompts import PromptFormat

    if dtype not in SERVING_DTYPES:
        raise ConfigError(f"merge dtype must be one of {SERVING_DTYPES}, got {dtype!r}")
    out = Path(out_dir)
    model = merged_model(base_model, adapter_dir)
    model = model.to({"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype])
    tokenizer = load_tokenizer(base_model)
    fmt = PromptFormat.load(adapter_dir)
    model.generation_config.eos_token_id = fmt.stop_token_ids(tokenizer)  # runtimes stop at the end of the turn
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    fmt.save_with(tokenizer, out)
    info = {"dtype": dtype, "parameters": sum(p.numel() for p in model.parameters()),
            "size_bytes": sum(f.stat().st_size for f in out.glob("*.safetensors")),
            "merged_weights_sha256": weights_sha256(model), "prompt_format": fmt.kind}
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
