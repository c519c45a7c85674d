"""KFP component: tokenize a validated dataset with the base model's tokenizer and split it."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare_dataset(
    dataset: Input[Dataset],
    base_model: str,
    prepared: Output[Dataset],
    validation_fraction: float = 0.1,
    max_length: int = 256,
    seed: int = 0,
    prompt_format: str = "auto",
    system_prompt: str = "",
    base: Input[Model] = None,
):
    """Writes ``train.arrow`` and ``validation.arrow`` (Arrow IPC: token ids, labels on the assistant turns only) and
    ``prompt_format.json`` into one Dataset. ``prompt_format``: ``auto`` (the tokenizer's chat template when it has one,
    else plain), ``chat-template``, ``plain`` or a Jinja chat template; ``system_prompt`` starts every conversation
    that has none. Instruction and chat (``messages``) records both work. ``base`` (fetch_base_model's output):
    the tokenizer is read from the run's copy of the base model."""
    from kfp_llmops.components.data.prepare_dataset import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_dir, lineage
    from kfp_llmops.modeling import load_tokenizer, use_base_model
    from kfp_llmops.tokenized import FORMAT as PREPARED_FORMAT

    with user_errors():
        use_base_model(base_model, base.path if base is not None else None)
        cfg = core.PrepareConfig(validation_fraction=validation_fraction, max_length=max_length, seed=seed,
                                 prompt_format=prompt_format, system_prompt=system_prompt)
        with atomic_dir(prepared.path) as tmp:  # streamed: a chunk of rows in memory at a time
            stats = core.prepare_file(dataset.path, load_tokenizer(base_model), tmp, cfg)
    prepared.metadata.update(
        lineage(path=prepared.path, parents={"dataset": dataset.uri}, base_model=base_model, format=PREPARED_FORMAT,
                source_sha256=dataset.metadata.get("sha256"), **stats)
    )
    print(stats)
