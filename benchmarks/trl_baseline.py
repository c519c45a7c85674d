"""TRL's ``SFTTrainer`` as the benchmarks' baseline trainer: pre-tokenized examples (labels -100 on the prompt), BFD
packing into rows of ``max_length`` tokens, padding-free (per-document positions), a cosine schedule, and as many
packed rows per step as it takes to see every example once in ``steps`` steps, as our trainer does."""

from __future__ import annotations

import math


def sft_trainer(examples, model, probe_model, *, steps: int, learning_rate: float, warmup_steps: int, max_length: int,
                output_dir: str, on_gpu: bool = False, liger: bool = False):
    """Returns ``(trainer, packed rows)``. ``probe_model``: any small model, to count the rows the packing makes
    (packing does not depend on the model)."""
    import datasets
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    # a tokenizer only for its pad and eos ids: the data is already token ids
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<pad>": 0, "<unk>": 1, "<eos>": 2},
                                                                             unk_token="<unk>")),
                                        pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")
    data = datasets.Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                                       "labels": [e.labels for e in examples]})
    common = dict(output_dir=output_dir, max_steps=steps, learning_rate=learning_rate, lr_scheduler_type="cosine",
                  warmup_steps=warmup_steps, logging_steps=10**6, report_to=[], save_strategy="no", seed=0,
                  disable_tqdm=True, packing=True, packing_strategy="bfd", max_length=max_length)
    probe = SFTTrainer(model=probe_model, train_dataset=data, processing_class=tokenizer,
                       args=SFTConfig(**common, use_cpu=True, per_device_train_batch_size=1))
    rows = len(probe.train_dataset)
    config = SFTConfig(**common, use_cpu=not on_gpu, bf16=on_gpu, per_device_train_batch_size=math.ceil(rows / steps),
                       **({"use_liger_kernel": True} if liger else {}))
    return SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer), rows
