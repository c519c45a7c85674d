"""A LoRA adapter on its base model: applied (as evaluation runs it), merged into the weights (as exports and merged
serving need it), checked against the base it was trained on, and the merged weights' digest. Never imports kfp."""

from __future__ import annotations

import json
from pathlib import Path, PurePath

from kfp_llmops.errors import UserInputError
from kfp_llmops.modeling import accelerator, load_causal_lm


def load_adapted(base_model: str, adapter_dir: str, *, merge: bool = False, on_accelerator: bool = False):
    """The base model with the LoRA adapter applied; ``merge`` folds it into the weights (as served).
    ``on_accelerator``: on the GPU in bf16 (fp16 where bf16 is missing) when there is one; else CPU fp32."""
    from peft import PeftModel

    device, dtype = accelerator() if on_accelerator else ("cpu", "fp32")
    model = PeftModel.from_pretrained(load_causal_lm(base_model, dtype=dtype), adapter_dir)
    model = model.merge_and_unload().eval() if merge else model
    return model.to(device) if device != "cpu" else model


def check_adapter_base(base_model: str, adapter_dir: str) -> None:
    """Fails when the adapter was trained on another base model than the one given."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    if not cfg_path.exists():
        raise UserInputError(f"{adapter_dir}: no adapter_config.json (not a peft adapter folder)")
    trained_on = json.loads(cfg_path.read_text()).get("base_model_name_or_path") or ""
    if trained_on and PurePath(trained_on).name != PurePath(base_model.rstrip("/")).name and trained_on != base_model:
        raise UserInputError(f"the adapter in {adapter_dir} was trained on base model {trained_on!r}, not {base_model!r}")


def merged_model(base_model: str, adapter_dir: str):
    """Base model with the adapter's weights folded in (a plain ``transformers`` model again), in fp32 on CPU."""
    check_adapter_base(base_model, adapter_dir)
    try:
        return load_adapted(base_model, adapter_dir, merge=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise UserInputError(f"cannot apply the adapter in {adapter_dir} to {base_model}: {str(exc).splitlines()[0]}") from None


def weights_sha256(model) -> str:
    """Content digest of a model's weights (names, dtypes, shapes and bytes, in name order): the merged weights'
    identity in the lineage, independent of how they are serialized."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
