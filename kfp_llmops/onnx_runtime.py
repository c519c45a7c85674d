"""ONNX decoders with a KV cache at run time: sessions, the cache layout read from a graph, external weight files,
and greedy decoding (the fed-back cache, or one shared buffer per tensor for graphs that write into their past), as
the exporter's parity checks, the evaluation of exported models, the servers and the benchmarks run them. Never
imports kfp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfp_llmops.errors import UserInputError


@dataclass(frozen=True)
class CacheLayout:
    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, config) -> "CacheLayout":
        heads = config.num_attention_heads
        return cls(config.num_hidden_layers, getattr(config, "num_key_value_heads", None) or heads,
                   getattr(config, "head_dim", None) or config.hidden_size // heads)

    @property
    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    @property
    def present_names(self) -> list[str]:
        return [f"present.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def empty_past(self, batch: int) -> dict[str, np.ndarray]:
        return {n: np.zeros((batch, self.kv_heads, 0, self.head_dim), np.float32) for n in self.past_names}


def external_files(path: str | Path) -> list[Path]:
    """The external data files an ONNX model refers to (beside it), none for a self-contained one."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    names = {e.value for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return [Path(path).parent / n for n in sorted(names)]


def copy_model(src: str | Path, dst: str | Path) -> Path:
    """Copies an ONNX model and its external data files (which keep their names: the graph refers to them so)."""
    import shutil

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    for f in external_files(src):
        shutil.copyfile(f, dst.parent / f.name)
    return dst


def session(path: str | Path, optimize: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types for corrupt files
        raise UserInputError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def layout_of(sess) -> CacheLayout:
    past = [i for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    if not past:
        raise UserInputError("the ONNX model has no past_key_values inputs (not a KV-cache decoder export)")
    _, heads, _, dim = past[0].shape
    return CacheLayout(len(past) // 2, int(heads), int(dim))


SHARED_CACHE_KEY = "past_present_share_buffer"  # model metadata: the graph can write its cache into its past buffer


def onnx_greedy(sess, tokenizer, prompts: list[str], max_new_tokens: int, stop_at_eos: bool = True) -> list[list[int]]:
    """Greedy generation with the KV cache: one full step over the (left-padded) prompts, then one token a step.
    A graph whose metadata says ``past_present_share_buffer`` (onnxruntime-genai's builder's, see genai_builder.py)
    decodes into one preallocated cache buffer per tensor, bound as both its past input and present output, as
    onnxruntime-genai's own loop does: nothing is copied or allocated per step."""
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="np", padding=True, add_special_tokens=False)
    return greedy_ids(sess, enc["input_ids"], enc["attention_mask"], max_new_tokens,
                      tokenizer.eos_token_id if stop_at_eos else None)


def greedy_ids(sess, ids, mask, max_new_tokens: int, eos_token_id: int | None = None) -> list[list[int]]:
    """:func:`onnx_greedy` on prompts already tokenized and left-padded (``ids`` and ``mask``: batch x length); each
    row stops after ``eos_token_id`` (None: never)."""
    ids, mask = np.asarray(ids, np.int64), np.asarray(mask, np.int64)
    if sess.get_modelmeta().custom_metadata_map.get(SHARED_CACHE_KEY) == "1":
        steps = _greedy_shared_cache(sess, ids, mask, max_new_tokens)
    else:
        steps = _greedy_steps(sess, ids, mask, max_new_tokens)
    out = [[] for _ in range(ids.shape[0])]
    done = np.zeros(ids.shape[0], bool)
    for nxt in steps:
        for row, token in enumerate(nxt.tolist()):
            if not done[row]:
                out[row].append(token)
                done[row] = token == eos_token_id
        if done.all():
            break
    return out


def _greedy_steps(sess, ids, mask, max_new_tokens: int):
    """Each step's next tokens (argmax), the present tensors fed back as the next step's past."""
    layout = layout_of(sess)
    outputs = ["logits", *layout.present_names]
    feeds = {"input_ids": ids, "attention_mask": mask, **layout.empty_past(ids.shape[0])}
    ones = np.ones((ids.shape[0], 1), np.int64)
    for _ in range(max_new_tokens):
        logits, *present = sess.run(outputs, feeds)
        nxt = logits[:, -1].argmax(-1)
        yield nxt
        mask = np.concatenate([mask, ones], axis=1)
        feeds = {"input_ids": nxt[:, None], "attention_mask": mask, **dict(zip(layout.past_names, present))}


def _greedy_shared_cache(sess, ids, mask, max_new_tokens: int):
    """The same steps on a graph that writes each new key and value into its past buffer (GroupQueryAttention
    does when past and present are one buffer): prompts plus new tokens must fit its rotary cache (the model's
    ``max_position_embeddings``), as they must in torch."""
    import onnxruntime as ort

    layout = layout_of(sess)
    batch, length = ids.shape
    binding = sess.io_binding()
    binding.bind_output("logits")
    buffers = []  # kept alive while bound
    for past, present in zip(layout.past_names, layout.present_names):
        shape = [batch, layout.kv_heads, length + max_new_tokens, layout.head_dim]
        buffer = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32)
        binding.bind_ortvalue_input(past, buffer)
        binding.bind_ortvalue_output(present, buffer)
        buffers.append(buffer)
    binding.bind_cpu_input("input_ids", ids)
    binding.bind_cpu_input("attention_mask", mask)
    sess.run_with_iobinding(binding)
    prompt_logits = binding.get_outputs()[0].numpy()
    logits = np.empty((batch, 1, prompt_logits.shape[-1]), np.float32)  # each decoding step writes here
    nxt_ids = np.empty((batch, 1), np.int64)  # and reads its input ids from here
    nxt_ids[:, 0] = prompt_logits[:, -1].argmax(-1)
    binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
    binding.bind_input("input_ids", "cpu", 0, np.int64, list(nxt_ids.shape), nxt_ids.ctypes.data)
    # from here on the mask is the whole buffer's, ones up to the newest token: a row's length is its last one
    # (genai_builder.py), so each step sets one column instead of binding a longer mask
    full_mask = np.zeros((batch, length + max_new_tokens), np.int64)
    full_mask[:, :length] = mask
    binding.bind_input("attention_mask", "cpu", 0, np.int64, list(full_mask.shape), full_mask.ctypes.data)
    yield nxt_ids[:, 0].copy()
    for step in range(max_new_tokens - 1):
        full_mask[:, length + step] = 1
        sess.run_with_iobinding(binding)
        nxt_ids[:, 0] = logits[:, 0].argmax(-1)
        yield nxt_ids[:, 0].copy()
