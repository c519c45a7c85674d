"""A real ``mlflow server`` process on 127.0.0.1 for the tests (full MLflow, from the venv ``make install`` builds
beside ours: the full package pins a pyarrow that our stack does not allow, so it cannot share our venv)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MLFLOW = Path(os.environ.get("KFP_LLMOPS_MLFLOW_SERVER", REPO_ROOT / ".venv-mlflow" / "bin" / "mlflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``with MlflowServer(tmp) as url:`` a tracking server with a SQLite store and proxied artifacts in ``tmp``."""

    def __init__(self, root: Path):
        self.root, self.port, self.proc = Path(root), free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        if not MLFLOW.exists():
            raise RuntimeError(f"no mlflow server at {MLFLOW}: run `make install` (it builds .venv-mlflow), or point "
                               "KFP_LLMOPS_MLFLOW_SERVER at an `mlflow` executable")
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("mlflow server did not become healthy within 120 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
