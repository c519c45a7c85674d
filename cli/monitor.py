"""``kfp-llmops monitor``: served traffic against the training data and the SLOs, as the monitor step checks it."""

from __future__ import annotations

import json
from pathlib import Path

from kfp_llmops.cli.arguments import json_arg


def add_parser(sub) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    from kfp_llmops.components.monitoring.monitor_model.core import report_html
    from kfp_llmops.components.monitoring.monitor_model.service import monitor_once
    from kfp_llmops.lineage import atomic_file

    result, version, done = monitor_once(
        args.payload_log, args.reference, monitor_config=json_arg(args.config, "--config"),
        retrain_config=json_arg(args.retrain_config, "--retrain-config"), model_name=args.model,
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
