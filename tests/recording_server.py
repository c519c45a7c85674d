"""A real HTTP server on localhost that records every request and answers from a handler: it stands in for the
Kubernetes API, Prometheus and Vertex AI, none of which is reachable here, so tests can assert the exact calls."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    content_type: str
    body: object
    headers: dict | None = None


class RecordingServer:
    def __init__(self, handler):
        """``handler(request: Recorded) -> (status, json_body)``."""
        self.handler = handler
        self.requests: list[Recorded] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                req = Recorded(self.command, unquote(url.path), {k: v[0] for k, v in parse_qs(url.query).items()},
                               self.headers.get("Content-Type", ""), body, {k.lower(): v for k, v in self.headers.items()})
                outer.requests.append(req)
                status, answer = outer.handler(req)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]
