"""finetune-and-rollout: validate -> prepare -> train -> evaluate -> gate -> export -> register -> staging smoke test
-> approval -> (shadow) canary rollout.

``serving_format`` picks what is exported, registered and served: ``onnx`` (a Triton repository, protocol v2),
``hf`` (the merged safetensors folder for KServe's Hugging Face runtime, OpenAI-compatible chat) or ``adapter`` (the
LoRA adapter alone, megabytes, served on its base by name: vLLM ``--enable-lora``; the canary is between adapter
versions on one base). ``onnx_exporter``:
``torchscript`` (opset 18, any onnxruntime >= 1.16, the pinned Triton image's included) or ``torch.export`` (opset 23:
ONNX's Attention and RotaryEmbedding ops, faster generation; the server needs onnxruntime >= 1.23).

The candidate is evaluated side by side with the registry's ``production`` version (``resolve-production``) and the
base model, and the gate applies its regression rules to production; a first rollout falls back to the base model.

Two conditions shape the DAG: invalid training data (a critical expectation failed) fails the run in
``stop-on-invalid-data`` before anything trains, and a candidate the gate blocks stops before export. An exit handler
(``restore-stable``) puts the stable revision back if the run fails or is terminated during the rollout.

``fetch-base-model`` resolves ``base_model`` once: a hub id to its commit, downloaded into the run's artifact, which
every step that loads the base reads (``cache_base_model: false`` pins the commit only); a folder is read in place.
"""

from kfp import dsl
from kfp.dsl import Dataset

from kfp_llmops.components.compilation.build_tensorrt_engine.component import build_tensorrt_engine
from kfp_llmops.components.compilation.export_onnx.component import export_onnx
from kfp_llmops.components.compilation.merge_adapter.component import merge_adapter
from kfp_llmops.components.compilation.package_adapter.component import package_adapter
from kfp_llmops.components.data.prepare_dataset.component import prepare_dataset
from kfp_llmops.components.data.stop_on_invalid_data.component import stop_on_invalid_data
from kfp_llmops.components.data.validate_dataset.component import validate_dataset
from kfp_llmops.components.deployment.restore_stable.component import restore_stable
from kfp_llmops.components.preflight.check_configs.component import check_configs
from kfp_llmops.components.deployment.rollout_model.component import rollout_model
from kfp_llmops.components.deployment.staging_smoke_test.component import staging_smoke_test
from kfp_llmops.components.evaluation.evaluate_model.component import evaluate_model
from kfp_llmops.components.evaluation.regression_gate.component import regression_gate
from kfp_llmops.components.registry.await_approval.component import await_approval
from kfp_llmops.components.registry.fetch_base_model.component import fetch_base_model
from kfp_llmops.components.registry.register_model.component import register_model
from kfp_llmops.components.registry.resolve_production.component import resolve_production
from kfp_llmops.components.training.train_lora.component import train_lora
from kfp_llmops.components.training.train_lora.core import TrainConfig
from kfp_llmops.pipelines.platform import export_task, gpu_task, hub_credentials, registry_credentials, rollout_credentials, training_volumes

NAME = "finetune-and-rollout"


def build(target: str = "vertex"):
    """The pipeline function for a compile target (``kfp`` or ``vertex``); the DAG is the same for both."""
    default_train_config = TrainConfig().to_dict()  # a fresh dict per build: the KFP compiler edits defaults in place

    @dsl.pipeline(name=NAME, description="Fine-tune an LLM with LoRA, gate it against production and its base, export, register and roll it out as a canary.")
    def finetune_and_rollout(
        base_model: str,
        train_data: str,
        eval_data: str,
        train_data_sha256: str = "",
        prompt_format: str = "auto",
        system_prompt: str = "",
        serving_format: str = "onnx",
        onnx_exporter: str = "torchscript",
        reference_data: str = "",
        screening: dict = {},
        train_config: dict = default_train_config,
        train_processes: int = 1,
        trainer_job: dict = {},
        baseline_models: dict = {},
        eval_config: dict = {},
        gate_config: dict = {},
        model_name: str = "llm",
        registry_uri: str = "",
        deploy_target: str = "local",
        rollout_config: dict = {},
        staging_config: dict = {},
        approval_config: dict = {},
        cost_config: dict = {},
        namespace: str = "kfp-llmops",
        inference_service: str = "",
        storage_uri: str = "",
        prometheus_url: str = "http://prometheus-operated.monitoring:9090",
        vertex_endpoint: str = "",
        build_tensorrt: bool = False,
        cache_base_model: bool = True,
        source_commit: str = "",
    ):
        restore = restore_stable(
            target=deploy_target,
            model_name=model_name,
            registry_uri=registry_uri,
            namespace=namespace,
            inference_service=inference_service,
            vertex_endpoint=vertex_endpoint,
        )
        registry_credentials(restore, target)
        rollout_credentials(restore, target)
        with dsl.ExitHandler(restore, name="rollout-guard"):
            checked = check_configs(train_config=train_config, eval_config=eval_config, gate_config=gate_config,
                                    rollout_config=rollout_config, screening=screening, trainer_job=trainer_job,
                                    approval_config=approval_config, cost_config=cost_config, staging_config=staging_config,
                                    prompt_format=prompt_format, serving_format=serving_format, onnx_exporter=onnx_exporter)
            # the run's one copy of the base model, at one commit: the steps below read it instead of the hub
            fetched = fetch_base_model(base_model=base_model, cache=cache_base_model).after(checked)
            hub_credentials(fetched, target)
            fetched.set_caching_options(False)  # an unpinned id or a folder may have changed since a cached run
            base = fetched.outputs["base"]
            train_ds = dsl.importer(artifact_uri=train_data, artifact_class=Dataset, reimport=False).set_display_name("import-train-data")
            eval_ds = dsl.importer(artifact_uri=eval_data, artifact_class=Dataset, reimport=False).set_display_name("import-eval-data")
            validated = validate_dataset(
                dataset=train_ds.output,
                eval_dataset=eval_ds.output,
                reference_data=reference_data,
                expected_sha256=train_data_sha256,
                screening=screening,
            ).after(checked)
            with dsl.If(validated.outputs["Output"] == True, name="data-valid"):  # noqa: E712 (a KFP condition)
                prepared = prepare_dataset(dataset=validated.outputs["validated"], base_model=base_model,
                                           prompt_format=prompt_format, system_prompt=system_prompt, base=base)
                trained = train_lora(
                    prepared=prepared.outputs["prepared"],
                    base_model=base_model,
                    train_config=train_config,
                    nproc_per_node=train_processes,
                    trainer_job=trainer_job,
                    trainer_platform="vertex" if target == "vertex" else "kubeflow",  # Vertex AI has no Kubeflow Trainer
                    tracking_uri=registry_uri,  # an MLflow registry gets the training run's step metrics beside its versions
                    model_name=model_name,
                    base=base,
                )
                gpu_task(trained, target)
                training_volumes(trained, target)
                registry_credentials(trained, target)  # for the MLflow tracking server
                # a retried task resumes from train_config.checkpoint_dir (a PVC path on Kubeflow, /gcs/... on Vertex)
                trained.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2)
                production = resolve_production(model_name=model_name, base_model=base_model, registry_uri=registry_uri)
                registry_credentials(production, target)
                evaluated = evaluate_model(
                    base_model=base_model,
                    adapter=trained.outputs["adapter"],
                    eval_dataset=eval_ds.output,
                    production=production.outputs["production"],
                    baseline_models=baseline_models,
                    eval_config=eval_config,
                    base=base,
                )
                gpu_task(evaluated, target, memory="32G")
                gate = regression_gate(evaluation=evaluated.outputs["results"], gate_config=gate_config)
                with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (a KFP condition, not Python)

                    def release(served):
                        """Registers the model to serve (with the adapter and lineage) and rolls it out as a canary."""
                        registered = register_model(
                            model_name=model_name,
                            base_model=base_model,
                            dataset=validated.outputs["validated"],
                            adapter=trained.outputs["adapter"],
                            onnx_model=served,
                            evaluation=evaluated.outputs["metrics"],
                            gate_decision=gate.outputs["decision"],
                            source_commit=source_commit,
                            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                            registry_uri=registry_uri,
                            cost_config=cost_config,
                        )
                        registry_credentials(registered, target)
                        return registered

                    def roll_out(served, registered):
                        """The staging smoke test (when staging_config names a target), a person's approval (when
                        approval_config asks for one), then the canary rollout."""
                        staged = staging_smoke_test(served=served, registered=registered.outputs["lineage"],
                                                    eval_dataset=eval_ds.output, staging_config=staging_config,
                                                    storage_uri=storage_uri)
                        rollout_credentials(staged, target)
                        approved = await_approval(registered=registered.outputs["lineage"],
                                                  evaluation_report=evaluated.outputs["report"],
                                                  approval_config=approval_config).after(staged)
                        registry_credentials(approved, target)
                        with dsl.If(approved.outputs["Output"] == True, name="approved"):  # noqa: E712 (a KFP condition)
                            rollout(served, registered)

                    def rollout(served, registered):
                        rolled_out = rollout_model(
                            onnx_model=served,
                            registered=registered.outputs["lineage"],
                            eval_dataset=eval_ds.output,
                            target=deploy_target,
                            rollout_config=rollout_config,
                            serving_format=serving_format,
                            namespace=namespace,
                            inference_service=inference_service,
                            storage_uri=storage_uri,
                            prometheus_url=prometheus_url,
                            vertex_endpoint=vertex_endpoint,
                        )
                        rollout_credentials(rolled_out, target)
                        registry_credentials(rolled_out, target)

                    with dsl.If(serving_format == "onnx", name="serve-onnx"):
                        exported = export_onnx(
                            base_model=base_model, adapter=trained.outputs["adapter"], eval_dataset=eval_ds.output, model_name=model_name,
                            exporter=onnx_exporter, base=base,
                        )
                        export_task(exported, target)
                        registered = release(exported.outputs["onnx_model"])
                        with dsl.If(build_tensorrt == True, name="tensorrt"):  # noqa: E712 (a KFP condition)
                            engine = build_tensorrt_engine(onnx_model=exported.outputs["onnx_model"], model_name=model_name)
                            gpu_task(engine, target)
                        roll_out(exported.outputs["onnx_model"], registered)
                    with dsl.If(serving_format == "hf", name="serve-hf"):  # an Elif here re-targets the outer Else (KFP 2.17)
                        merged = merge_adapter(base_model=base_model, adapter=trained.outputs["adapter"], base=base)
                        export_task(merged, target)
                        roll_out(merged.outputs["hf_model"], release(merged.outputs["hf_model"]))
                    with dsl.If(serving_format == "adapter", name="serve-adapter"):
                        packaged = package_adapter(base_model=base_model, adapter=trained.outputs["adapter"])
                        roll_out(packaged.outputs["adapter_model"], release(packaged.outputs["adapter_model"]))
            with dsl.Else(name="data-invalid"):
                stop_on_invalid_data(report=validated.outputs["report"])

    return finetune_and_rollout

