"""The one place that names the container images our components run on.

The tag is the package version, so a compiled pipeline always points at the image built from the same
source (``containers/runtime.Dockerfile``). ``KFP_LLMOPS_IMAGE_REGISTRY`` moves every image to a mirror.
"""

from __future__ import annotations

import os

from kfp_llmops import __version__

DEFAULT_REGISTRY = "ghcr.io/kfp-llmops"
REGISTRY = os.environ.get("KFP_LLMOPS_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")

RUNTIME_IMAGE = f"{REGISTRY}/runtime:{__version__}"

# Serving: NVIDIA Triton, pinned. The KServe ServingRuntime (manifests/servingruntime.yaml) and the Vertex AI model
# upload use it; on Vertex, mirror it into Artifact Registry and set KFP_LLMOPS_TRITON_IMAGE.
TRITON_IMAGE = os.environ.get("KFP_LLMOPS_TRITON_IMAGE", "nvcr.io/nvidia/tritonserver:25.01-py3")
