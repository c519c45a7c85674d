"""Model-side helpers shared by the demo assets, training, evaluation and export cores.

Everything here works on any causal LM that ``transformers`` loads with ``from_pretrained``
(a hub id or a local path); nothing here imports kfp.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

from kfp_llmops.examples import IGNORE_INDEX, Example


def collate(examples: Sequence[Example], pad_id: int):
    """Right-pads a batch; returns ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack(examples: Sequence[Example], width: int, attention_width: float = 0.0) -> list[list[Example]]:
    """The examples of one batch in rows of at most ``width`` tokens, balanced so that the rows come out about equally
    long (the collated batch is as wide as its longest row, so uneven rows waste slots).

    A packing of R rows, the longest W tokens wide, costs R x W slots, each weighted by ``1 + W / attention_width``:
    a slot attends over its row's W slots (masked per document, but computed), and ``attention_width`` is the width
    at which that attention costs as much as the slot's matrix products (:func:`attention_width`). With
    ``attention_width`` 0 only the slots count: what to pass when attention runs per document. For row counts from the fewest that can hold the tokens to a
    few more (and, with an attention cost, for narrower rows down to the longest example, in 10 % steps), the
    narrowest width at which first-fit decreasing fits that many rows is found; the cheapest packing wins. An
    example longer than ``width`` gets a row of its own. Deterministic: a resumed run packs as the first did."""
    lengths = [len(e.input_ids) for e in examples]
    total, longest = sum(lengths), max(lengths)
    best = _first_fit_decreasing(examples, width)
    if longest >= width:
        return best

    def cost(rows: list[list[Example]]) -> float:
        wide = max(sum(len(e.input_ids) for e in row) for row in rows)
        return len(rows) * wide * (1 + wide / attention_width if attention_width > 0 else 1)

    best_cost = cost(best)
    fewest = math.ceil(total / width)
    wanted = set(range(fewest, fewest + 4))
    narrower = float(width)
    while attention_width > 0 and narrower > longest:
        narrower = max(longest, narrower / 1.1)
        wanted.add(math.ceil(total / narrower))
    for rows_wanted in sorted(wanted):
        target = max(longest, math.ceil(total / rows_wanted))
        while target <= width:
            rows = _first_fit_decreasing(examples, target)
            if len(rows) <= rows_wanted:
                rows_cost = cost(rows)
                if rows_cost < best_cost:
                    best, best_cost = rows, rows_cost
                break
            target += max(1, target // 100)
    return best


def attention_width(model) -> float:
    """The row width at which a slot's attention (QK^T and AV over the row, forward and backward: 12 x heads x
    head_dim x W FLOPs a layer) costs as much as its decoder layer's matrix products (forward and the input gradient
    of frozen weights: 4 x the layer's parameters): the layer's parameters over 3 x heads x head_dim. About 1,300 for
    a 10M Llama, 5,500 for Qwen2.5-0.5B, 17,700 for Llama 3 8B: packing in narrower rows pays most on small models.
    0 when the model's shape is not recognised (packing then minimises slots only)."""
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    if not heads or not hidden:
        return 0.0
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = set(getattr(inner, "_no_split_modules", None) or ())
    layer = next((m for m in model.modules() if type(m).__name__ in layer_classes), None)
    if layer is None:
        return 0.0
    return sum(p.numel() for p in layer.parameters()) / (3 * heads * head_dim)


def _first_fit_decreasing(examples: Sequence[Example], width: int) -> list[list[Example]]:
    rows: list[list[Example]] = []
    room: list[int] = []
    for e in sorted(examples, key=lambda e: -len(e.input_ids)):
        n = len(e.input_ids)
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(e)
                room[r] -= n
                break
        else:
            rows.append([e])
            room.append(max(0, width - n))
    return rows


def collate_packed(rows: Sequence[Sequence[Example]], pad_id: int, spans: bool = False):
    """Packed rows with per-document isolation, in transformers' packed-sequence format: position ids restart at each
    document (and at each row's padded tail) and no attention mask is passed, so the model builds its own mask from
    the position ids, for whichever attention it runs (block-diagonal causal, with its sliding windows; flash
    attention reads the spans from them). The loss is the same mean over response tokens as the padded batch's.
    ``spans``: also ``cu_seq_lens_q`` / ``cu_seq_lens_k``, the same spans for attention per document
    (:mod:`kfp_llmops.packed_attention`)."""
    import torch

    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e.input_ids)
            ids[r, at : at + n] = torch.tensor(e.input_ids)
            labels[r, at : at + n] = torch.tensor(e.labels)
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)  # the padded tail: a span of its own, seen by nothing else
    batch = {"input_ids": ids, "labels": labels, "position_ids": positions}
    if spans:  # the cumulative span lengths over the flattened rows, as transformers' flash-attention path reads them
        from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

        (batch["cu_seq_lens_q"], batch["cu_seq_lens_k"]), _ = prepare_fa_kwargs_from_position_ids(positions)
    return batch


def decoder_layers(model) -> list:
    """The model's decoder layers: the modules of its ``_no_split_modules`` classes (transformers' own list)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = set(getattr(inner, "_no_split_modules", None) or ())
    return [module for module in model.modules() if type(module).__name__ in layer_classes]


def shard(model) -> None:
    """FSDP2: each decoder layer its own shard group, then the root."""
    from torch.distributed.fsdp import fully_shard

    for module in decoder_layers(model):
        fully_shard(module)
    fully_shard(model)


@contextlib.contextmanager
def compiled_layers(model, enabled: bool = True) -> Iterator[int]:
    """Within the block, each decoder layer's forward runs through ``torch.compile`` (regional compilation, compiled at
    the first step; dynamic shapes, so packed rows of any width and count share the graphs); yields how many layers.
    Attention per packed document stays eager (:mod:`kfp_llmops.packed_attention`). The layers' own forward is
    restored on the way out, also when the block raises."""
    import torch

    layers = [m for m in decoder_layers(model) if "forward" not in m.__dict__] if enabled else []
    for layer in layers:
        layer.forward = torch.compile(layer.forward, dynamic=True)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward


def full_state(model, keep=lambda name: True) -> dict:
    """The model's state dict with sharded (DTensor) entries gathered whole, for the names ``keep`` selects; a
    collective under FSDP: every rank calls it."""
    out = {}
    for name, value in model.state_dict().items():
        if keep(name):
            out[name] = value.full_tensor() if hasattr(value, "full_tensor") else value
    return out


def response_nll(model, examples: Sequence[Example], *, pad_id: int, batch_size: int = 32) -> tuple[float, int]:
    """Summed negative log-likelihood of the response tokens and how many tokens it covers."""
    import torch

    total, count = 0.0, 0
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[start : start + batch_size], pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            shift_logits = logits[:, :-1].float()
            shift_labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)),
                shift_labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            total += float(loss)
            count += int((shift_labels != IGNORE_INDEX).sum())
    model.train(was_training)
    return total, count


BASE_MANIFEST = "base-model.json"  # what fetch_base_model wrote into its artifact
MODEL_COPIES_ENV = "KFP_LLMOPS_MODEL_COPIES"  # {model ref: {"load": where, "revision": commit}}, for this process tree


def _model_copies() -> dict:
    import json
    import os

    raw = os.environ.get(MODEL_COPIES_ENV)
    return json.loads(raw) if raw else {}


def use_base_model(base_model: str, artifact_dir: str | None) -> str:
    """Points every load of ``base_model`` in this process (and the processes it starts: torchrun's workers) at what
    fetch_base_model brought into the run: its copy in ``artifact_dir``, or the commit it pinned. Returns the
    reference a load now resolves to (a folder, or ``<repo>@<commit>``); without an artifact, ``base_model`` itself.
    The lineage keeps naming ``base_model``."""
    import json
    import os
    from pathlib import Path

    from kfp_llmops.errors import UserInputError

    if not artifact_dir:
        return base_model
    manifest = Path(artifact_dir) / BASE_MANIFEST
    if not manifest.is_file():
        raise UserInputError(f"the base-model artifact {artifact_dir} has no {BASE_MANIFEST}: not fetch_base_model's output")
    info = json.loads(manifest.read_text(encoding="utf-8"))
    if info.get("base_model") != base_model:
        raise UserInputError(f"the base-model artifact {artifact_dir} was fetched for {info.get('base_model')!r}, but "
                             f"this step was given base_model {base_model!r}: wire the same base model into both")
    load = info["load_from"]
    if info.get("copied"):
        load = str(Path(artifact_dir) / load)
    copies = {**_model_copies(), base_model: {"load": load, "revision": info["revision"]}}
    os.environ[MODEL_COPIES_ENV] = json.dumps(copies)
    return load


def base_reference(base_model: str, revision: str = "") -> str:
    """What a process loads for ``base_model`` trained at ``revision`` (a LoRA adapter's base, for a server): the id
    itself when :func:`use_base_model` mapped it (the run's copy), ``<id>@<commit>`` for a hub commit, else the id
    or folder as it is."""
    import os

    if base_model in _model_copies() or not revision or revision.startswith("sha256:") or "@" in base_model \
            or os.path.exists(base_model):
        return base_model
    return f"{base_model}@{revision}"


def pinned_reference(model_ref: str) -> str:
    """``model_ref`` as a process elsewhere (a Trainer job's node) loads it: a hub id mapped by :func:`use_base_model`
    at the commit it was pinned to; anything else as it is."""
    copy = _model_copies().get(model_ref)
    if copy and not copy["revision"].startswith("sha256:"):
        return f"{_split_revision(model_ref)[0]}@{copy['revision']}"
    return model_ref


def split_revision(model_ref: str) -> tuple[str, str | None]:
    """``org/name@<commit, tag or branch>`` -> (``org/name``, revision); a plain id or a local path -> (it, None).
    A hub id without a revision takes whatever its main branch holds today: pin one for reproducible runs.
    A reference that :func:`use_base_model` mapped resolves to its copy (or pinned commit)."""
    copy = _model_copies().get(model_ref)
    return _split_revision(copy["load"] if copy else model_ref)


def _split_revision(model_ref: str) -> tuple[str, str | None]:
    import os

    name, sep, revision = model_ref.rpartition("@")
    if not sep or not name or "/" in revision or os.path.exists(model_ref):
        return model_ref, None
    return name, revision


def resolved_revision(model_ref: str) -> str:
    """What exactly was loaded, for the lineage: the hub commit the files came from (a revision given as a tag or
    branch resolves to its commit), or ``sha256:<digest>`` of a local model folder's content."""
    import os

    from kfp_llmops.lineage import sha256_path

    copy = _model_copies().get(model_ref)
    if copy:
        return copy["revision"]  # fetch_base_model resolved it once for the whole run
    name, revision = split_revision(model_ref)
    if os.path.isdir(os.path.expanduser(name)):
        return "sha256:" + sha256_path(os.path.expanduser(name))
    from transformers.utils.hub import cached_file, extract_commit_hash

    # the snapshot folder the hub client resolved (the download, or the cache when offline) is named by its commit
    commit = extract_commit_hash(cached_file(name, "config.json", revision=revision), None)
    return commit or (revision or "unresolved")


def load_tokenizer(model_id_or_path: str):
    from transformers import AutoTokenizer

    name, revision = split_revision(model_id_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


BASE_DTYPES = ("auto", "fp32", "bf16", "fp16")
QUANTIZATIONS = ("none", "nf4")


def weight_dtype(requested: str = "auto", *, cuda: bool, bf16_supported: bool) -> str:
    """The dtype base weights load in: ``auto`` is bf16 on a GPU that supports it (Ampere and newer: A100, L4, H100),
    fp16 on older GPUs (T4, V100), fp32 on CPU; anything else is taken as asked."""
    if requested not in BASE_DTYPES:
        from kfp_llmops.errors import ConfigError

        raise ConfigError(f"base dtype must be one of {BASE_DTYPES}, got {requested!r}")
    if requested != "auto":
        return requested
    return ("bf16" if bf16_supported else "fp16") if cuda else "fp32"


def accelerator() -> tuple[str, str]:
    """``(device, weight dtype)`` for inference here: the GPU in bf16 (fp16 where bf16 is missing), else CPU fp32."""
    import torch

    cuda = torch.cuda.is_available()
    return ("cuda" if cuda else "cpu"), weight_dtype(cuda=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported())


def check_compiler(torch_compile: bool, *, cuda: bool) -> None:
    """torch.compile generates code that a compiler on the node builds: C++ on CPU (inductor's kernels; ``$CXX`` if
    set), C on CUDA (Triton's launcher; ``$CC``). Without one this says so before anything loads, not at the first
    step."""
    if not torch_compile:
        return
    import os
    import shutil

    from kfp_llmops.errors import ConfigError

    variable, names = ("CC", ["gcc", "cc", "clang"]) if cuda else ("CXX", ["g++", "c++", "clang++"])
    names = [os.environ[variable]] if os.environ.get(variable) else names
    if not any(shutil.which(name) for name in names):
        raise ConfigError(f"torch_compile needs a {'C' if cuda else 'C++'} compiler on this node ({', '.join(names)}: "
                          "none found on PATH): run on the kfp-llmops image (it has g++), or set torch_compile false")


def check_quantization(quantization: str, *, cuda: bool) -> None:
    """nf4 (QLoRA) runs on CUDA with bitsandbytes; anywhere else this says why, before anything loads."""
    from kfp_llmops.errors import ConfigError

    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "none":
        return
    if not cuda:
        raise ConfigError("quantization 'nf4' (QLoRA) needs a CUDA GPU (bitsandbytes' 4-bit kernels); this step has "
                          "none. Run it on a GPU node (the pipelines' training step asks for one), or use "
                          "quantization 'none' with base_dtype bf16")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("quantization 'nf4' needs bitsandbytes, which this image lacks: use the GPU image "
                          "(pip install 'kfp-llmops[gpu]')")


def load_causal_lm(model_id_or_path: str, *, dtype: str = "fp32", quantization: str = "none", device: str | None = None):
    """Loads a causal LM from a hub id or a local path (safetensors only, never pickles): weights in ``dtype``
    (``fp32``, ``bf16``, ``fp16``), or 4-bit NF4 with double quantization and ``dtype`` compute (QLoRA; CUDA only),
    on ``device`` (CPU when not given)."""
    import torch
    from transformers import AutoModelForCausalLM

    from kfp_llmops.errors import UserInputError

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    name, revision = split_revision(model_id_or_path)
    extra = {}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        check_quantization(quantization, cuda=torch.cuda.is_available())
        compute = torch.float32 if dtype == "fp32" else torch_dtype
        extra = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute),
                 "device_map": {"": torch.cuda.current_device()}}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=torch_dtype, use_safetensors=True, **extra)
    except Exception as exc:  # corrupt or truncated weights, a missing file, an unknown architecture...
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise UserInputError(f"cannot load the model {model_id_or_path!r}: {type(exc).__name__}: {first}") from exc
    if model_id_or_path in _model_copies():  # loaded from the run's copy: adapters still name the model's own id
        model.name_or_path = model.config._name_or_path = _split_revision(model_id_or_path)[0]
    if device and quantization == "none":
        model = model.to(device)
    return model
