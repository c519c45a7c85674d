"""The ``kfp-llmops`` command: ``demo-assets``, ``compile``, ``run`` (local, Kubeflow or Vertex AI), ``schedule``,
``validate``, ``evaluate`` and ``registry``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kfp_llmops.errors import UserInputError


def _demo_arguments(assets_dir: Path) -> dict:
    return {
        "base_model": str(assets_dir / "base-model"),
        "train_data": str(assets_dir / "train.jsonl"),
        "eval_data": str(assets_dir / "eval.jsonl"),
    }


def cmd_demo_assets(args) -> int:
    from kfp_llmops.demo.assets import build_demo_assets

    summary = build_demo_assets(args.out_dir)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_compile(args) -> int:
    from kfp_llmops.pipelines.compiling import main

    argv = ["--check"] if args.check else []
    if args.out:
        argv += ["--out", args.out]
    return main(argv)


_JSON_TYPES = {"Dict": dict, "List": list, "Integer": int, "Float": (int, float), "Boolean": bool}


def parse_arguments(args, inputs: dict | None = None) -> dict:
    """The run's arguments from ``--demo-assets``, ``--arguments`` and ``--param``. With ``inputs`` (the pipeline's
    input specs), unknown names, values of the wrong type (a dict given as broken JSON, say) and missing required
    parameters are named here, before anything is submitted."""
    arguments: dict = {}
    if args.demo_assets:
        demo = _demo_arguments(Path(args.demo_assets).resolve())  # those the pipeline takes (eval-only: no train_data)
        arguments.update({k: v for k, v in demo.items() if inputs is None or k in inputs})
    if args.arguments:
        arguments.update(_json_arg(args.arguments, "--arguments"))
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserInputError(f"--param takes NAME=JSON_OR_TEXT, got {item!r}")
        kind = inputs[key].type if inputs and key in inputs else None
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            if kind in ("Dict", "List", "Integer", "Float", "Boolean"):
                raise UserInputError(f"--param {key}: not valid JSON for a {kind.lower()} parameter ({exc.msg} at "
                                     f"column {exc.colno}): {value!r}") from None
            arguments[key] = value
        if kind == "String" and not isinstance(arguments[key], str):
            arguments[key] = value  # a string parameter takes the text as given (e.g. a version "1.10")
    if inputs is not None:
        check_parameters(arguments, inputs)
    return arguments


def check_parameters(arguments: dict, inputs: dict) -> None:
    unknown = sorted(set(arguments) - set(inputs))
    if unknown:
        raise UserInputError(f"unknown parameter(s) {unknown}; this pipeline takes {sorted(inputs)}")
    missing = sorted(k for k, spec in inputs.items() if not spec.optional and k not in arguments)
    if missing:
        raise UserInputError(f"missing required parameter(s) {missing}: pass --param NAME=VALUE (or --demo-assets DIR)")
    for key, value in arguments.items():
        expected = _JSON_TYPES.get(inputs[key].type)
        if expected and (not isinstance(value, expected) or isinstance(value, bool) and inputs[key].type != "Boolean"):
            raise UserInputError(f"parameter {key} must be a {inputs[key].type.lower()}, got {value!r}")


def add_content_digest(arguments: dict) -> dict:
    """Pins a local training file's (or folder's) sha256 into the run, so that a file changed at the same path never
    hits a stale cache (and the validation step fails if the file changes after submission)."""
    from kfp_llmops.lineage import sha256_path

    data = arguments.get("train_data")
    if data and "train_data_sha256" not in arguments and Path(data).exists():
        arguments = {**arguments, "train_data_sha256": sha256_path(data)}
    return arguments


def checked_arguments(args):
    """What ``run`` and ``schedule`` check before anything is submitted: the pipeline, the backend's settings, the
    parameters and every config; the registry a backend defaults to. Returns the pipeline, arguments and local root."""
    from kfp_llmops.pipelines.registry import PIPELINES, build
    from kfp_llmops.preflight import check_configs

    if args.pipeline not in PIPELINES:
        raise UserInputError(f"unknown pipeline {args.pipeline!r}; known: {sorted(PIPELINES)}")
    check_backend(args)
    pipeline = build(args.pipeline, "kfp" if args.backend == "kfp" else "vertex")
    arguments = parse_arguments(args, pipeline.component_spec.inputs)
    check_configs(arguments)  # every config mistake named now, for every backend, before anything runs
    root = Path(args.pipeline_root or "build/local-runs").resolve()
    if "registry_uri" in pipeline.component_spec.inputs:
        if args.backend == "local":  # local runs keep their model registry beside their outputs
            arguments.setdefault("registry_uri", f"sqlite:///{root / 'registry.db'}")
        elif args.backend == "vertex" and args.project and args.location:  # Vertex AI Model Registry
            arguments.setdefault("registry_uri", f"vertex://projects/{args.project}/locations/{args.location}")
    return pipeline, arguments, root


def cmd_run(args) -> int:
    from kfp_llmops.preflight import check_remote_inputs

    pipeline, arguments, root = checked_arguments(args)
    if args.if_data_changed and not data_changed(arguments, pipeline.component_spec.inputs):
        return 0
    if args.backend == "local":
        from kfp_llmops.local_run import run_local

        from kfp_llmops.container_run import ContainerPolicy

        policy = ContainerPolicy(read_only=not args.writable_root, mem_limit=args.memory) if args.runner == "docker" else None
        summary = run_local(pipeline, add_content_digest(arguments), root, enable_caching=args.cache,
                            runner=args.runner, container_policy=policy)
        print("\n" + summary.text())
        return 0 if summary.succeeded else 1
    check_remote_inputs(arguments, args.backend)
    if args.backend == "kfp":
        return submit_kfp(args, pipeline, arguments)
    return submit_vertex(args, arguments)


def cmd_schedule(args) -> int:
    """The same checks as ``run`` (parameters, configs, remote inputs), then a recurring run of the committed spec."""
    from kfp_llmops.pipelines.compiling import DEFAULT_OUT
    from kfp_llmops.preflight import check_remote_inputs
    from kfp_llmops.scheduling import ScheduleSpec, create_kfp_schedule, create_vertex_schedule

    if args.backend == "local":
        raise UserInputError("schedule needs --backend kfp or vertex; on one machine, run `kfp-llmops run "
                             "--if-data-changed` from cron or CI (examples/)")
    spec = ScheduleSpec(name=args.name or args.pipeline, cron=args.cron, max_concurrency=args.max_concurrency,
                        time_zone=args.time_zone)
    _, arguments, _ = checked_arguments(args)
    check_remote_inputs(arguments, args.backend)
    target = DEFAULT_OUT / args.backend / f"{args.pipeline}.yaml"
    if args.backend == "kfp":
        cron = spec.kfp_cron()  # a zone Kubeflow cannot honour is refused before anything is sent
        try:
            client = kfp_client(args.host)
            schedule_id = create_kfp_schedule(client, spec, str(target), arguments, args.experiment)
        except Exception as exc:  # noqa: BLE001 (as in submit_kfp)
            raise UserInputError(remote_error("Kubeflow Pipelines API", args.host, exc)) from None
        print(f"created recurring run {schedule_id} ({spec.name}: '{cron}' UTC, at most {spec.max_concurrency} at once)")
        return 0
    try:
        credentials = None
        if (args.api_endpoint or "").startswith("http://"):  # an emulator or a stand-in: no Google credentials
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        job = vertex_job(str(target), arguments, project=args.project, location=args.location,
                         pipeline_root=args.pipeline_root, enable_caching=args.cache, credentials=credentials)
        name = create_vertex_schedule(job, spec, project=args.project, location=args.location,
                                      api_endpoint=args.api_endpoint)
    except Exception as exc:  # noqa: BLE001 (google.auth and google.api_core errors)
        raise UserInputError(remote_error("Vertex AI API", f"{args.project}/{args.location}", exc)) from None
    print(f"created schedule {name} ({spec.name}: '{spec.vertex_cron()}', at most {spec.max_concurrency} at once)")
    return 0


def kfp_client(host: str):
    import warnings

    import kfp

    with warnings.catch_warnings():  # kfp.Client warns about old servers on every call
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(host=host)


def data_changed(arguments: dict, inputs: dict) -> bool:
    """``--if-data-changed``: False (and why, on stdout) when production was trained on this run's training data."""
    from kfp_llmops.registry import open_registry
    from kfp_llmops.triggers import check_data_changed, train_data_digest

    if "train_data" not in inputs or "registry_uri" not in inputs:
        raise UserInputError("--if-data-changed needs a pipeline that trains and registers (finetune-and-rollout)")
    model_name = arguments.get("model_name") or inputs["model_name"].default
    check = check_data_changed(open_registry(arguments.get("registry_uri", "")), model_name, train_data_digest(arguments))
    print(check.message)
    return check.changed


def check_backend(args) -> None:
    """The backend's own settings, named before anything else is looked at."""
    if getattr(args, "runner", "subprocess") == "docker" and args.backend != "local":
        raise UserInputError(f"--runner docker is for local runs; --backend {args.backend} runs each step in the "
                             "runtime image already")
    if args.backend == "kfp" and not args.host:
        raise UserInputError("--backend kfp needs --host (the Kubeflow Pipelines API URL)")
    if args.backend == "vertex":
        for flag in ("project", "location", "pipeline_root"):
            if not getattr(args, flag):
                raise UserInputError(f"--backend vertex needs --{flag.replace('_', '-')}")
        if not args.pipeline_root.startswith("gs://"):
            raise UserInputError(f"--pipeline-root for Vertex AI must be a gs:// URI, got {args.pipeline_root!r}")


def submit_kfp(args, pipeline, arguments: dict) -> int:
    try:
        client = kfp_client(args.host)
        run = client.create_run_from_pipeline_func(pipeline, arguments=arguments, experiment_name=args.experiment)
    except Exception as exc:  # noqa: BLE001 (urllib3, kfp_server_api and requests errors all mean the same here)
        raise UserInputError(remote_error("Kubeflow Pipelines API", args.host, exc)) from None
    print(f"submitted run {run.run_id}")
    return 0


def remote_error(service: str, where: str, exc: Exception) -> str:
    """What failed when talking to a remote service, and what to do, in one line instead of a traceback."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    name = type(exc).__name__
    if name in ("DefaultCredentialsError", "RefreshError", "TransportError") or "credentials" in text.lower():
        return (f"{service}: no usable Google Cloud credentials ({text}). Run `gcloud auth application-default login`, "
                "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file")
    if any(word in text for word in ("Connection refused", "Max retries", "Failed to establish", "Name or service not known",
                                     "timed out", "NewConnectionError")):
        return (f"cannot reach the {service} at {where} ({text}). Check the address (for Kubeflow, e.g. "
                "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80` and --host http://localhost:8080)")
    if any(code in text for code in ("401", "403", "Unauthorized", "Forbidden")):
        return f"the {service} at {where} refused the request ({text}): check your credentials and permissions"
    return f"the {service} at {where} failed: {text}"


def vertex_job(template_path: str, arguments: dict, *, project: str, location: str, pipeline_root: str,
               credentials=None, enable_caching: bool = False):
    """An ``aiplatform.PipelineJob`` for a compiled Vertex spec (built offline; ``submit()`` is the caller's)."""
    from google.cloud import aiplatform

    return aiplatform.PipelineJob(
        display_name=Path(template_path).stem,
        template_path=template_path,
        pipeline_root=pipeline_root,
        parameter_values=arguments,
        project=project,
        location=location,
        credentials=credentials,
        enable_caching=enable_caching,
    )


def submit_vertex(args, arguments: dict) -> int:
    from kfp_llmops.pipelines.compiling import DEFAULT_OUT

    check_backend(args)
    template = DEFAULT_OUT / "vertex" / f"{args.pipeline}.yaml"
    try:
        job = vertex_job(str(template), arguments, project=args.project, location=args.location,
                         pipeline_root=args.pipeline_root, enable_caching=args.cache)
        job.submit()
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 (google.auth and google.api_core errors)
        raise UserInputError(remote_error("Vertex AI Pipelines API", f"{args.project}/{args.location}", exc)) from None
    print(f"submitted {job.resource_name}")
    return 0


def cmd_validate(args) -> int:
    """Exit 0: passed; 1: a critical check failed; 2: the input (or a config) cannot be read."""
    from kfp_llmops.components.data.validate_dataset import core
    from kfp_llmops.configs import ScreeningConfig
    from kfp_llmops.datasets import DatasetSpec

    try:
        columns = dict(_key_value(c, "--column") for c in args.column or [])
        spec = DatasetSpec(args.dataset, file_format=args.format, record_format=args.record_format, columns=columns)
        suite = _json_arg(args.suite, "--suite") if args.suite else None
        screening = ScreeningConfig.from_dict(_json_arg(args.screening, "--screening") if args.screening else None)
        result, cleaned = core.validate_files(spec, core.ValidationConfig(max_length=args.max_length, suite=suite),
                                              screening, eval_path=args.eval_set, reference_path=args.reference)
    except UserInputError as exc:
        print(f"kfp-llmops validate: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.out:
        out = Path(args.out)
        core.write_outputs(result, cleaned, report_path=out / "report.html", gx_result_path=out / "gx_result.json",
                           data_path=out / "validated.jsonl" if result.success else None)
        (out / "metrics.json").write_text(json.dumps(result.metrics(), indent=2) + "\n", encoding="utf-8")
        print(f"reports in {out}/ (report.html, gx_result.json, metrics.json{', validated.jsonl' if result.success else ''})")
    return 0 if result.success else 1


def cmd_evaluate(args) -> int:
    """Exit 0: the gate promotes; 1: it blocks; 2: bad input (missing model, empty eval set, bad config...)."""
    from kfp_llmops.handoff import write_results
    from kfp_llmops.components.evaluation.evaluate_model import core
    from kfp_llmops.components.evaluation.evaluate_model.report import render_html
    from kfp_llmops.components.evaluation.regression_gate.core import GateConfig, decide
    from kfp_llmops.datasets import read_jsonl, records

    try:
        cfg = core.EvalConfig.from_dict(_json_arg(args.eval_config, "--eval-config") if args.eval_config else None)
        gate_cfg = GateConfig.from_dict(_json_arg(args.gate_config, "--gate-config") if args.gate_config else None)
        pairs = records(read_jsonl(args.eval_data))
        if not Path(args.adapter).is_dir():
            raise UserInputError(f"--adapter {args.adapter}: no such adapter folder")
        named = {"base": args.base_model, **dict(_key_value(b, "--baseline") for b in args.baseline or [])}
        report = core.evaluate_adapter(args.base_model, args.adapter, pairs, named, cfg)
        decision = decide(report["comparisons"], gate_cfg)
    except UserInputError as exc:
        print(f"kfp-llmops evaluate: error: {exc}", file=sys.stderr)
        return 2
    flat = core.flat_metrics(report)
    for key in ("exact_match", "rouge_l", "bleu", "sentence_bleu", "perplexity", "ece", "latency_p95_ms", "attack_success_rate"):
        print(f"{key:<20} " + "  ".join(f"{name} {flat[f'{name}.{key}']:.4f}" for name in report["models"] if f"{name}.{key}" in flat))
    print(decision.markdown())
    if args.out:
        out = Path(args.out)
        write_results(report, out)
        (out / "report.html").write_text(render_html(report, decision), encoding="utf-8")
        (out / "metrics.json").write_text(json.dumps(flat, indent=1) + "\n", encoding="utf-8")
    return 0 if decision.passed else 1


def _key_value(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise UserInputError(f"{flag} takes OURS=THEIRS, got {item!r}")
    return key, value


def _json_arg(value: str, flag: str) -> dict:
    """A JSON object given inline or as a file path."""
    text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{flag}: not a JSON object or a JSON file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(parsed, dict):
        raise UserInputError(f"{flag}: expected a JSON object, got {type(parsed).__name__}")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfp-llmops", description="LLM fine-tune-to-rollout pipelines for Kubeflow and Vertex AI.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-assets", help="build the tiny demo model, tokenizer and datasets (deterministic)")
    p.add_argument("out_dir", help="folder to write base-model/, train.jsonl, eval.jsonl and assets.json into")
    p.set_defaults(func=cmd_demo_assets)

    p = sub.add_parser("validate", help="validate and screen a dataset: exit 0 passed, 1 critical failure, 2 unreadable")
    p.add_argument("dataset", help="the dataset file (JSONL, CSV, Parquet or Arrow) or a folder of shards")
    p.add_argument("--suite", help="a GX suite (JSON file) instead of the default suite")
    p.add_argument("--screening", help="screening config overrides (JSON or a JSON file)")
    p.add_argument("--eval-set", help="check contamination against this eval set")
    p.add_argument("--reference", help="check drift against this reference dataset")
    p.add_argument("--out", help="write report.html, gx_result.json, metrics.json and validated.jsonl here")
    p.add_argument("--format", default="auto", help="jsonl, csv, parquet or arrow (default: from the suffix)")
    p.add_argument("--record-format", default="auto", help="instruction, chat or sharegpt (default: from the columns)")
    p.add_argument("--column", action="append", metavar="OURS=THEIRS", help="map a column name, e.g. response=completion")
    p.add_argument("--max-length", type=int, default=4096, help="longest allowed record, in characters (default 4096)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("evaluate", help="evaluate an adapter against baselines and gate it: exit 0 promote, 1 blocked, 2 bad input")
    p.add_argument("--base-model", required=True, help="the base model: a hub id (org/name) or a local folder")
    p.add_argument("--adapter", required=True, help="the LoRA adapter folder")
    p.add_argument("--eval-data", required=True, help="held-out JSONL")
    p.add_argument("--baseline", action="append", metavar="NAME=MODEL", help="another baseline, e.g. production=/models/prod")
    p.add_argument("--eval-config", help="EvalConfig overrides (JSON or a JSON file)")
    p.add_argument("--gate-config", help="GateConfig overrides (JSON or a JSON file)")
    p.add_argument("--out", help="write report.json, examples.jsonl, report.html and metrics.json here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compile", help="compile every pipeline for Kubeflow and Vertex AI")
    p.add_argument("--check", action="store_true", help="exit 1 naming any committed spec that is stale; write nothing")
    p.add_argument("--out", default=None, help="write the specs here instead of pipelines/compiled/")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("registry", help="show a model's aliases, or roll production back to the previous version")
    p.add_argument("action", choices=["aliases", "rollback"], help="aliases: show them; rollback: production back to previous")
    p.add_argument("--model", required=True, help="the registered model name (the pipelines' model_name)")
    p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("monitor", help="check served traffic (a payload log) against the training data and the SLOs; "
                                       "exit 1 on a breach")
    p.add_argument("payload_log", help="KServe payload logger CloudEvents (a JSONL file or a folder of them; the local "
                                       "servers write them with --payload-log)")
    p.add_argument("--reference", required=True, help="the training data (JSONL) the production model was trained on")
    p.add_argument("--model", default="llm", help="the registered model (default llm)")
    p.add_argument("--base-model", default="", help="whose tokenizer counts prompt tokens for protocol v2 traffic")
    p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
    p.add_argument("--target", default="local", choices=["local", "kserve", "vertex"], help="where production is served")
    p.add_argument("--config", default="{}", help="MonitorConfig as JSON, e.g. '{\"on_breach\": [\"rollback\"]}'")
    p.add_argument("--retrain-config", default="{}", help="RetrainConfig as JSON (for on_breach retrain)")
    p.add_argument("--namespace", default="kfp-llmops")
    p.add_argument("--inference-service", default="")
    p.add_argument("--prometheus-url", default="")
    p.add_argument("--vertex-endpoint", default="")
    p.add_argument("--out", default="build/monitor", help="folder for monitor.html and monitor.json (default build/monitor)")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("compare", help="compare runs side by side (kfp.local run folders and/or registry versions)")
    p.add_argument("runs", nargs="*", help="kfp.local run folders (e.g. build/local-runs/finetune-and-rollout-...)")
    p.add_argument("--model", default="llm", help="the registered model of --version (default llm)")
    p.add_argument("--version", action="append", default=[], help="a registered version to compare (repeatable)")
    p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
    p.add_argument("--out", default="build/compare", help="folder for compare.html and compare.md (default build/compare)")
    p.set_defaults(func=cmd_compare)

    for action in ("approve", "reject"):
        p = sub.add_parser(action, help=f"{action} a registered version that a run's await-approval step waits for")
        p.add_argument("model", help="the registered model name (the pipelines' model_name)")
        p.add_argument("version", help="the registered version")
        p.add_argument("--reason", required=True, help="why: kept in the registry with who decided")
        p.add_argument("--registry-uri", default="", help="as in the pipelines: sqlite:///..., http(s)://..., vertex://...")
        p.set_defaults(func=cmd_decide, approved=action == "approve")

    p = sub.add_parser("run", help="run a pipeline (kfp.local by default)")
    _pipeline_options(p)
    p.add_argument("--if-data-changed", action="store_true",
                   help="submit nothing (exit 0) when the registry's production model was trained on this train_data "
                        "(same sha256): for a cron job or a CI step on a data repository")
    p.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                   help="local: subprocess runs each step in this Python (default); docker runs each in the runtime "
                        "image (`make image`), restricted as a cluster would run it")
    p.add_argument("--memory", metavar="LIMIT", help="local --runner docker: each step container's memory limit, e.g. 4g")
    p.add_argument("--writable-root", action="store_true",
                   help="local --runner docker: start containers with a writable root filesystem (default read-only)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("schedule", help="create a recurring run on Kubeflow Pipelines or a Vertex AI schedule")
    _pipeline_options(p)
    p.add_argument("--cron", required=True, help="five fields, e.g. '0 3 * * 1' (Mondays 03:00)")
    p.add_argument("--name", help="the schedule's display name (default: the pipeline's name)")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of the schedule at once (default 1)")
    p.add_argument("--time-zone", default="UTC", help="vertex: an IANA time zone for the cron (Kubeflow: UTC only)")
    p.add_argument("--api-endpoint", help="vertex: another API endpoint (e.g. a Private Service Connect one)")
    p.set_defaults(func=cmd_schedule)
    return parser


def _pipeline_options(p) -> None:
    """What ``run`` and ``schedule`` both take: the pipeline, the backend and its settings, the arguments."""
    p.add_argument("--pipeline", default="finetune-and-rollout",
                   help="finetune-and-rollout (default), eval-only or lora-sweep")
    p.add_argument("--backend", choices=("local", "kfp", "vertex"), default="local",
                   help="local: kfp.local on this machine (default); kfp: a Kubeflow Pipelines API; vertex: Vertex AI Pipelines")
    p.add_argument("--demo-assets", metavar="DIR", help="take base_model, train_data and eval_data from demo assets")
    p.add_argument("--arguments", metavar="FILE", help="a JSON file of pipeline arguments")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="one pipeline argument (JSON or text)")
    p.add_argument("--pipeline-root", help="local: where outputs go (default build/local-runs); vertex: gs:// root")
    p.add_argument("--cache", action="store_true", help="enable caching")
    p.add_argument("--host", help="kfp: the Kubeflow Pipelines API URL")
    p.add_argument("--experiment", default="kfp-llmops", help="kfp: the experiment the run is filed under (default kfp-llmops)")
    p.add_argument("--project", help="vertex: the Google Cloud project")
    p.add_argument("--location", help="vertex: the region, e.g. us-central1")


def cmd_registry(args) -> int:
    from kfp_llmops.registry import open_registry, rollback

    registry = open_registry(args.registry_uri)
    if args.action == "rollback":
        was, now = rollback(registry, args.model)
        print(f"{args.model}: production moved back from version {was} to version {now}")
    print(json.dumps({"registry_uri": registry.uri, "model": args.model, "aliases": registry.aliases(args.model)}, indent=2))
    return 0


def cmd_compare(args) -> int:
    from kfp_llmops import compare
    from kfp_llmops.lineage import atomic_file

    records = [compare.from_run_dir(run) for run in args.runs]
    if args.version:
        from kfp_llmops.registry import open_registry

        registry = open_registry(args.registry_uri)
        records += [compare.from_registry(registry, args.model, v) for v in args.version]
    if len(records) < 2:
        raise UserInputError("compare needs at least two runs or versions")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = compare.compare_markdown(records)
    with atomic_file(out / "compare.html") as tmp:
        tmp.write_text(compare.compare_html(records), encoding="utf-8")
    with atomic_file(out / "compare.md") as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    print(markdown + f"\nwrote {out / 'compare.html'} and {out / 'compare.md'}")
    return 0


def cmd_monitor(args) -> int:
    from kfp_llmops.components.monitoring.monitor_model.core import report_html
    from kfp_llmops.components.monitoring.monitor_model.service import monitor_once
    from kfp_llmops.lineage import atomic_file

    result, version, done = monitor_once(
        args.payload_log, args.reference, monitor_config=_json_arg(args.config, "--config"),
        retrain_config=_json_arg(args.retrain_config, "--retrain-config"), model_name=args.model,
        base_model=args.base_model, registry_uri=args.registry_uri, target=args.target, namespace=args.namespace,
        inference_service=args.inference_service, prometheus_url=args.prometheus_url,
        vertex_endpoint=args.vertex_endpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "monitor.html") as tmp:
        tmp.write_text(report_html(result, model_name=args.model, version=version, actions=done), encoding="utf-8")
    with atomic_file(out / "monitor.json") as tmp:
        tmp.write_text(json.dumps({"version": version, "actions": done, **result.to_dict()}, indent=2) + "\n",
                       encoding="utf-8")
    print(f"wrote {out / 'monitor.html'} and {out / 'monitor.json'}")
    return 1 if result.breached else 0


def cmd_decide(args) -> int:
    from kfp_llmops.components.registry.await_approval.core import record
    from kfp_llmops.registry import open_registry

    decision = record(open_registry(args.registry_uri), args.model, args.version, approved=args.approved, reason=args.reason)
    print(f"{args.model} version {args.version}: {'approved' if decision.approved else 'rejected'} by {decision.by} "
          f"at {decision.at}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserInputError as exc:
        print(f"kfp-llmops: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
