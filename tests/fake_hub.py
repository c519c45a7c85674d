"""A Hugging Face Hub look-alike on 127.0.0.1 for tests and benchmarks: local model folders served as hub repos.

Nothing can be downloaded from a model hub here, but our loading code takes hub ids (``org/name@revision``) as users
give them; with ``HF_ENDPOINT`` pointing at this server, ``huggingface_hub`` (``snapshot_download``, and
``from_pretrained`` through it) runs its real download path. It answers the calls the client makes for a model
repository: ``/api/models/{repo}/revision/{rev}`` (the commit a branch resolves to), ``/api/models/{repo}/tree/{rev}``
(the file listing), and HEAD/GET ``/{repo}/resolve/{rev}/{file}`` with the headers the client checks
(``X-Repo-Commit``, ``ETag``, ``X-Error-Code`` on a missing entry). A repo's commit is a digest of its files, so it is
stable across runs. ``bytes_served`` counts the file bytes sent, per file: what a run cost the hub.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Repo:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files = sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())
        digest = hashlib.sha1()
        for name in self.files:
            digest.update(name.encode() + b"\0" + str((self.folder / name).stat().st_size).encode() + b"\0")
        self.commit = digest.hexdigest()

    def etag(self, name: str) -> str:
        path = self.folder / name
        return hashlib.sha1(f"{name}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()


class FakeHub:
    """``with FakeHub({"org/name": folder}) as hub:`` serves the folders; ``hub.endpoint`` is for HF_ENDPOINT."""

    def __init__(self, repos: dict[str, Path], host: str = "127.0.0.1", port: int = 0):
        self.repos = {repo_id: Repo(folder) for repo_id, folder in repos.items()}
        self.bytes_served: Counter = Counter()  # (repo_id, filename) -> bytes sent
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.endpoint = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def commit(self, repo_id: str) -> str:
        return self.repos[repo_id].commit

    def total_bytes(self) -> int:
        return sum(self.bytes_served.values())

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)) if not head or status >= 400 else
                                 (headers or {}).get("X-Linked-Size", str(len(body))))
                self.end_headers()
                if body and not head:
                    self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, commit: str | None = None, head: bool = False):
                headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
                if commit:
                    headers["X-Repo-Commit"] = commit
                self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

            def _info(self, repo_id: str, revision: str, head: bool):
                repo, error = self._repo_rev(repo_id, revision)
                if error:
                    return self._error(404, error, f"{error}: {repo_id}@{revision}", head=head)
                body = {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                        "siblings": [{"rfilename": f, "size": (repo.folder / f).stat().st_size, "blobId": repo.etag(f)}
                                     for f in repo.files]}
                return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head=head)

            def _repo_rev(self, repo_id: str, revision: str):
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return None, "RepoNotFound"
                if revision not in ("main", repo.commit):
                    return repo, "RevisionNotFound"
                return repo, None

            def do_HEAD(self):
                self._route(head=True)

            def do_GET(self):
                self._route(head=False)

            def _route(self, head: bool):
                path = unquote(urlsplit(self.path).path)
                with hub._lock:
                    hub.requests.append(("HEAD" if head else "GET", path))
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):]
                    for kind in ("/revision/", "/tree/"):
                        if kind in rest:
                            repo_id, revision = rest.split(kind, 1)
                            revision, _, folder = revision.partition("/")
                            repo, error = self._repo_rev(repo_id, revision)
                            if error:
                                return self._error(404, error, f"{error}: {repo_id}@{revision}", head=head)
                            if kind == "/revision/":
                                return self._info(repo_id, revision, head)
                            else:  # the files under the folder asked for (recursive), the whole repo for none
                                listed = [f for f in repo.files if not folder or f.startswith(folder.rstrip("/") + "/")]
                                if folder and not listed:
                                    return self._error(404, "EntryNotFound", f"{folder} not in {repo_id}", repo.commit,
                                                       head=head)
                                body = [{"type": "file", "path": f, "size": (repo.folder / f).stat().st_size,
                                         "oid": repo.etag(f)} for f in listed]
                            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"},
                                              head=head)
                    return self._info(rest, "main", head)  # /api/models/{repo}: its main branch
                if "/resolve/" in path:
                    repo_id, rest = path.lstrip("/").split("/resolve/", 1)
                    revision, _, filename = rest.partition("/")
                    repo, error = self._repo_rev(repo_id, revision)
                    if error:
                        return self._error(404, error, f"{error}: {repo_id}@{revision}", head=head)
                    if filename not in repo.files:
                        return self._error(404, "EntryNotFound", f"{filename} not in {repo_id}", repo.commit, head=head)
                    file = repo.folder / filename
                    headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{repo.etag(filename)}"',
                               "X-Linked-Size": str(file.stat().st_size), "Content-Type": "application/octet-stream"}
                    if head:
                        return self._send(200, b"", headers, head=True)
                    self.send_response(200)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(file.stat().st_size))
                    self.end_headers()
                    sent = 0
                    with file.open("rb") as fh:
                        while chunk := fh.read(1 << 20):
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    with hub._lock:
                        hub.bytes_served[(repo_id, filename)] += sent
                    return None
                return self._error(404, "EntryNotFound", f"no such route {path}", head=head)

        return Handler
