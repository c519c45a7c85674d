"""KFP component: deploy the registered candidate on a staging target and call it with golden prompts."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def staging_smoke_test(
    served: Input[Model],
    registered: Input[Artifact],
    eval_dataset: Input[Dataset],
    report: Output[Markdown],
    staging_config: dict = {},
    storage_uri: str = "",
):
    """With ``staging_config.target`` (``local``, ``kserve``: an InferenceService in ``namespace``; ``vertex``: the
    staging ``vertex_endpoint``), deploys ``served`` there and calls it with ``prompts`` golden prompts (the first
    evaluation records) through the production clients; any unanswered or malformed answer, a p95 above
    ``max_p95_ms``, or (``hf``) fewer than ``min_match`` replies starting with the reference fails the step, before
    any production traffic moves. Without a target, passes at once and says so. An adapter (``serving_format:
    adapter``) is served on its base (the pinned commit, or the folder) under the registered name."""
    from kfp_llmops.components.deployment.staging_smoke_test import core
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file

    meta = dict(registered.metadata)
    name, version = meta["registered_model"], str(meta["version"]).removesuffix(".0")  # kfp.local: ints as floats
    result = None
    with user_errors():
        cfg = core.StagingConfig.from_dict(dict(staging_config))
        if cfg.enabled:
            from kfp_llmops.components.deployment.staging_smoke_test.deploy import golden_prompts, staged
            from kfp_llmops.artifacts import LoraAdapterMetadata, serving_format_of
            from kfp_llmops.modeling import load_tokenizer

            serving_format = serving_format_of(dict(served.metadata))
            adapter = None
            if serving_format == "adapter":
                adapter = LoraAdapterMetadata.from_metadata(dict(served.metadata), where=f"the served adapter ({served.uri})")
            golden = golden_prompts(eval_dataset.path, served.path, serving_format, cfg.prompts)
            with staged(cfg, serving_format=serving_format, model_dir=served.path, model_name=name,
                        storage_uri=storage_uri or served.uri, digest=served.metadata.get("sha256", ""),
                        resource=meta.get("resource", ""), adapter=adapter) as (call, where):
                vocab = len(load_tokenizer(served.path)) if serving_format == "onnx" else 0  # logits' width: onnx only
                result = core.smoke_test(call, golden, cfg, serving_format=serving_format,
                                         vocab_size=vocab, target=cfg.target, where=where)
        text = core.report_markdown(result, model_name=name, version=version)
        print(text)
        if result is not None:
            core.raise_if_failed(result, name, version)
    with atomic_file(report.path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    report.metadata.update({"passed": True, "skipped": result is None, "target": cfg.target, "model": name,
                            "version": version, **({"p95_ms": result.p95_ms, "prompts": result.prompts} if result else {}),
                            "parents": {"served": served.uri, "registered": registered.uri}})
