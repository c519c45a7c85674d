"""``--request-hook MODULE:CALLABLE`` of our local servers (``hf_server``, ``onnx_server``): a callable of your own,
imported at start and called with the served name before each inference, inside what the server measures: what it
raises is an error response (HTTP 500) and counted as one in ``/metrics``, the time it takes is latency. For
rehearsing a rollback with injected faults (as ``tests/faults.py`` does) or a check of your own; the module must be
importable by the server (``PYTHONPATH``)."""

from __future__ import annotations

import importlib
from typing import Callable

from kfp_llmops.errors import UserInputError

RequestHook = Callable[[str], None]


def load_request_hook(spec: str | None) -> RequestHook | None:
    """The callable ``spec`` names, or None for none; a spec that names nothing callable is refused at start."""
    if not spec:
        return None
    module, sep, name = spec.partition(":")
    if not (sep and module and name):
        raise UserInputError(f"--request-hook takes MODULE:CALLABLE, got {spec!r}")
    try:
        hook = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UserInputError(f"--request-hook {spec}: {exc}") from None
    if not callable(hook):
        raise UserInputError(f"--request-hook {spec}: {name} is not callable")
    return hook
