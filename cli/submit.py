"""``kfp-llmops run`` and ``schedule``: a pipeline on kfp.local, Kubeflow Pipelines or Vertex AI, once or on a cron;
every parameter and config checked before anything is submitted."""

from __future__ import annotations

import json
from pathlib import Path

from kfp_llmops.cli.arguments import json_arg
from kfp_llmops.cli.demo import demo_arguments
from kfp_llmops.errors import UserInputError


def add_parser(sub) -> None:
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
    p.set_defaults(func=run)

    p = sub.add_parser("schedule", help="create a recurring run on Kubeflow Pipelines or a Vertex AI schedule")
    _pipeline_options(p)
    p.add_argument("--cron", required=True, help="five fields, e.g. '0 3 * * 1' (Mondays 03:00)")
    p.add_argument("--name", help="the schedule's display name (default: the pipeline's name)")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of the schedule at once (default 1)")
    p.add_argument("--time-zone", default="UTC", help="vertex: an IANA time zone for the cron (Kubeflow: UTC only)")
    p.add_argument("--api-endpoint", help="vertex: another API endpoint (e.g. a Private Service Connect one)")
    p.set_defaults(func=schedule)


_JSON_TYPES = {"Dict": dict, "List": list, "Integer": int, "Float": (int, float), "Boolean": bool}


def parse_arguments(args, inputs: dict | None = None) -> dict:
    """The run's arguments from ``--demo-assets``, ``--arguments`` and ``--param``. With ``inputs`` (the pipeline's
    input specs), unknown names, values of the wrong type (a dict given as broken JSON, say) and missing required
    parameters are named here, before anything is submitted."""
    arguments: dict = {}
    if args.demo_assets:
        demo = demo_arguments(Path(args.demo_assets).resolve())  # those the pipeline takes (eval-only: no train_data)
        arguments.update({k: v for k, v in demo.items() if inputs is None or k in inputs})
    if args.arguments:
        arguments.update(json_arg(args.arguments, "--arguments"))
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


def run(args) -> int:
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


def schedule(args) -> int:
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
