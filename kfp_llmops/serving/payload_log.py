"""A payload log in KServe's format: each request and its response as CloudEvents
(``org.kubeflow.serving.inference.request`` / ``...response``, the same ``id``), one structured-mode JSON event per
line, as KServe's payload logger sends them to a sink. The local servers write it with ``--payload-log PATH``;
``monitor_model`` reads it (or a KServe logger sink's files)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


class PayloadLogger:
    def __init__(self, path: str | Path, model_name: str, source: str = "kfp-llmops-local-server"):
        self.path, self.model_name, self.source = Path(path), model_name, source
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _write(self, kind: str, event_id: str, data: dict) -> None:
        from cloudevents.conversion import to_json
        from cloudevents.http import CloudEvent

        event = CloudEvent({"type": kind, "source": self.source, "id": event_id, "datacontenttype": "application/json",
                            "inferenceservicename": self.model_name, "component": "predictor"}, data)
        line = to_json(event).decode()
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def request(self, data: dict) -> str:
        event_id = str(uuid.uuid4())
        self._write(REQUEST_TYPE, event_id, data)
        return event_id

    def response(self, event_id: str, data: dict) -> None:
        self._write(RESPONSE_TYPE, event_id, data)


def open_logger(path: str | None, model_name: str) -> PayloadLogger | None:
    return PayloadLogger(path, model_name) if path else None
