"""Builds a rollout target from the component's parameters, and releases whatever it started."""

from __future__ import annotations

import contextlib
from pathlib import Path

from kfp_llmops.artifacts import CHAT_FORMATS
from kfp_llmops.deployment.requests import replay_messages, replay_requests, served_format
from kfp_llmops.deployment.vertex import VERTEX_ONNX_ONLY
from kfp_llmops.errors import ConfigError


def adapter_metadata(artifact):
    from kfp_llmops.artifacts import LoraAdapterMetadata

    return LoraAdapterMetadata.from_metadata(dict(artifact.metadata), where=f"the adapter to roll out ({artifact.uri})")


def check_same_base(adapter, stable, model_name: str) -> None:
    """A canary between adapters compares two adapters on one base: the production version's base (its registry
    tags) must be the candidate's, id and revision."""
    if stable is None:
        return
    tags = stable.tags or {}
    theirs = (tags.get("base_model", ""), tags.get("base_model_revision", ""))
    ours = (adapter.base_model, adapter.base_model_revision)
    if theirs != ours:
        raise ConfigError(f"the production version {stable.version} of {model_name} is an adapter on "
                          f"{theirs[0]}@{theirs[1] or '?'}, the candidate one on {ours[0]}@{ours[1] or '?'}: a canary "
                          "between adapters runs both on one base. Train on the production base, or roll out a new base "
                          "under a new model_name")


@contextlib.contextmanager
def build(target: str, cfg, *, onnx_model, eval_dataset, stable, model_name: str, version: str, resource: str, namespace: str,
          inference_service: str, storage_uri: str, prometheus_url: str, vertex_endpoint: str, work_dir: str,
          registry=None):
    """Yields ``(target, rendered)``: the target and the manifest or request it applies (for the record)."""
    if target == "local":
        from kfp_llmops.components.deployment.rollout_model.local import LocalTarget
        from kfp_llmops.modeling import base_reference

        if stable is not None and "://" in stable.source and not stable.source.startswith("file://"):
            raise ConfigError(f"the production version {stable.version} of {model_name} points at {stable.source}, "
                              "which is not in the registry's own store: the local target serves only versions "
                              "registered from this machine")
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        stable_repo = None
        if stable is not None:  # the production version's files, from the registry
            try:
                stable_repo = str(registry.download(stable, Path(work_dir) / f"stable-v{stable.version}"))
            except Exception as exc:  # noqa: BLE001 (any failure to fetch it means the same to the user)
                raise ConfigError(f"the production version {stable.version} of {model_name} ({stable.source}) could "
                                  f"not be downloaded from {registry.uri}: {exc}") from None
        stored = served_format(stable_repo) if stable_repo is not None else cfg.serving_format
        if stored != cfg.serving_format:
            raise ConfigError(f"the production version {stable.version} of {model_name} is served as {stored!r}, not "
                              f"as serving_format {cfg.serving_format!r}: a canary compares two revisions of one "
                              "runtime. Keep the format, or register under a new model_name for the new format")
        chat = cfg.serving_format in CHAT_FORMATS
        requests = replay_messages(eval_dataset.path) if chat else replay_requests(eval_dataset.path, onnx_model.path)
        rendered = {"stable": stable_repo, "candidate": onnx_model.path, "requests": len(requests),
                    "serving_format": cfg.serving_format}
        options = {}
        if cfg.serving_format == "adapter":  # one server: the base once, stable and candidate as adapters by name
            adapter = adapter_metadata(onnx_model)
            check_same_base(adapter, stable, model_name)
            options = {"base_model": base_reference(adapter.base_model, adapter.base_model_revision),
                       "names": {"stable": f"{model_name}-v{stable.version}" if stable else "",
                                 "candidate": f"{model_name}-v{version}"}}
            rendered.update(base_model=options["base_model"], adapters=options["names"])
        with LocalTarget(model_name, onnx_model.path, stable_repo, requests, cfg, log_dir=work_dir,
                         serving_format=cfg.serving_format, engine=cfg.engine, **options) as tgt:
            yield tgt, rendered
    elif target == "kserve":
        from kfp_llmops.deployment import kserve
        from kfp_llmops.deployment.metrics import Prometheus

        args = ()
        if cfg.serving_format == "adapter":  # each revision: the base by hub id and this version's adapter, as model_name
            adapter = adapter_metadata(onnx_model)
            check_same_base(adapter, stable, model_name)
            args = tuple(kserve.adapter_args(model_name, adapter.base_model, adapter.base_model_revision, adapter.rank))
        settings = kserve.KServeSettings(inference_service, namespace, storage_uri, onnx_model.metadata.get("sha256", ""),
                                         args=args)
        requests = []
        if cfg.shadow.enabled:  # what the shadow stage mirrors: the evaluation prompts, as the served model takes them
            chat = cfg.serving_format in CHAT_FORMATS
            requests = replay_messages(eval_dataset.path) if chat else replay_requests(eval_dataset.path, onnx_model.path)
        rendered = (kserve.shadow_patch(settings.storage_uri, settings.digest, args) if cfg.shadow.enabled and stable is not None
                    else kserve.start_patch(settings.storage_uri, cfg.schedule[0], settings.digest, args))
        yield kserve.KServeTarget(settings, cfg, api=kserve.kubernetes_api(), prometheus=Prometheus(prometheus_url),
                                  requests=requests, model_name=model_name), rendered
    elif target == "vertex":
        from kfp_llmops.deployment import vertex

        if cfg.serving_format != "onnx":
            raise ConfigError(VERTEX_ONNX_ONLY.format(serving_format=cfg.serving_format))
        if cfg.shadow.enabled:
            raise ConfigError("rollout_config.shadow is not available on the vertex target: a Vertex AI endpoint routes "
                              "predict requests by its traffic split (only an explain request names a deployed model, "
                              "and it needs an explanation spec), so a model deployed at 0 % cannot be called on its "
                              "own. Use the canary's first step (e.g. schedule [1, ...]) there, or the kserve "
                              "or local target for a shadow stage")
        if not vertex_endpoint.startswith("projects/"):
            raise ConfigError(f"vertex_endpoint must be projects/P/locations/L/endpoints/E, got {vertex_endpoint!r}")
        if not resource:
            raise ConfigError("the vertex target needs a model registered in the Vertex AI Model Registry "
                              "(registry_uri vertex://projects/P/locations/L)")
        deploy = cfg.vertex
        settings = vertex.VertexSettings(endpoint=vertex_endpoint, model=resource, machine_type=deploy.machine_type,
                                         accelerator_type=deploy.accelerator_type,
                                         accelerator_count=deploy.accelerator_count, min_replicas=deploy.min_replicas,
                                         max_replicas=deploy.max_replicas)
        yield vertex.VertexTarget(settings, cfg, prometheus=vertex.cloud_monitoring_prometheus(settings.project)), {"model": resource}
    else:
        raise ConfigError(f"unknown rollout target {target!r}")

