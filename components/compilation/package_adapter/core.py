"""Packages a trained LoRA adapter as the version to serve on a shared base (``serving_format: adapter``): nothing
is merged. The folder holds what vLLM's ``--lora-modules``, KServe's ``spec.model.lora.adapters`` and our local
server load: ``adapter_model.safetensors``, ``adapter_config.json`` (naming the base by id, and by its hub commit in
peft's ``revision`` when there is one) and ``prompt_format.json`` (the format it was trained in). Training records
(loss history, config) stay with the training artifact. Never imports kfp."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from kfp_llmops.errors import UserInputError

WEIGHTS, CONFIG, PROMPT_FORMAT = "adapter_model.safetensors", "adapter_config.json", "prompt_format.json"
SERVING_FILES = (WEIGHTS, CONFIG, PROMPT_FORMAT)
HUB_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def package(adapter_dir: str | Path, out_dir: str | Path, *, base_model: str, base_model_revision: str) -> dict:
    """Writes the serving folder into ``out_dir``; returns what its metadata records (rank, bytes, tensors, format).
    Refuses an adapter that is not a peft LoRA saved as safetensors, or one trained on another base."""
    from safetensors import safe_open

    src, out = Path(adapter_dir), Path(out_dir)
    missing = [name for name in SERVING_FILES if not (src / name).is_file()]
    if missing:
        pickled = [p.name for p in src.glob("adapter_model.bin")]
        raise UserInputError(f"the adapter {src} lacks {', '.join(missing)}"
                             + (f" (it has {pickled[0]}: pickled weights are never served; save with safetensors)"
                                if pickled else "") + ": pass train_lora's adapter output")
    config = json.loads((src / CONFIG).read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise UserInputError(f"{src / CONFIG}: peft_type is {config.get('peft_type')!r}; only LoRA adapters are served on a shared base")
    trained_on = config.get("base_model_name_or_path")
    if trained_on and trained_on != base_model:
        raise UserInputError(f"{src / CONFIG}: the adapter was trained on {trained_on!r}, not on base_model {base_model!r}")
    tensors = 0
    with safe_open(str(src / WEIGHTS), "np") as weights:  # reads the header only: no unpickling, no full load
        for key in weights.keys():
            shape = weights.get_slice(key).get_shape()
            size = 1
            for dim in shape:
                size *= dim
            tensors += size
    if not tensors:
        raise UserInputError(f"{src / WEIGHTS} holds no tensors")
    config["base_model_name_or_path"] = base_model
    if HUB_COMMIT.match(base_model_revision or ""):
        config["revision"] = base_model_revision  # what AutoPeftModel and a hub-aware server load the base at
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / WEIGHTS, out / WEIGHTS)
    shutil.copyfile(src / PROMPT_FORMAT, out / PROMPT_FORMAT)
    (out / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    prompt_format = json.loads((src / PROMPT_FORMAT).read_text(encoding="utf-8")).get("kind", "")
    return {"rank": int(config["r"]), "parameters": tensors, "prompt_format": prompt_format,
            "target_modules": ",".join(sorted(config.get("target_modules") or [])),
            "size_bytes": sum(p.stat().st_size for p in out.iterdir())}
