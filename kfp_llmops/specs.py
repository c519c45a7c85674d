"""Where the compiled pipeline specs are kept (``pipelines/compiled/<kfp|vertex>/<pipeline>.yaml``, committed for
GitOps): written by ``kfp_llmops.pipelines.compiling``, read by the CLI and by the monitor's retraining action."""

from __future__ import annotations

from pathlib import Path

COMPILED_SPECS = Path(__file__).resolve().parent.parent / "pipelines" / "compiled"


def spec_path(backend: str, pipeline: str, root: str | Path = COMPILED_SPECS) -> Path:
    return Path(root) / backend / f"{pipeline}.yaml"
