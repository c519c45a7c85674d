# The image every kfp-llmops component runs on: Python, the pinned stack and the package itself, baked in.
# Nothing is pip-installed when a step starts (components use install_kfp_package=False).
#
# Build from the repository root; the tag must be the package version (kfp_llmops/images.py derives it):
#   docker build -f containers/runtime.Dockerfile -t ghcr.io/kfp-llmops/runtime:$(python -c 'import kfp_llmops; print(kfp_llmops.__version__)') .
# GPU image: pass the CUDA wheel index of torch 2.13.0 as TORCH_INDEX_URL and EXTRAS="[gpu]" (bitsandbytes for QLoRA).
FROM python:3.11.7-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GX_ANALYTICS_ENABLED=false

# g++ (Debian bookworm's, pinned): torch.compile builds its generated kernels with it (TrainConfig torch_compile).
RUN apt-get update && apt-get install -y --no-install-recommends g++=4:12.2.0-3 && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 kfp && useradd --uid 10001 --gid kfp --create-home --shell /usr/sbin/nologin kfp

WORKDIR /opt/kfp-llmops
# torch first, pinned and from the chosen index, so that nothing later swaps in another build.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY constraints.txt ./
COPY pyproject.toml setup.py README.md ./
COPY kfp_llmops ./kfp_llmops
COPY components ./components
COPY pipelines ./pipelines
RUN pip install -c constraints.txt ".${EXTRAS}" && python -c "import kfp_llmops.components, kfp, torch, onnxruntime, kserve"

USER 10001:10001
WORKDIR /home/kfp
