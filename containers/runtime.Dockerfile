# The image every kfp-llmops component runs on: Python, the pinned stack and the package itself, baked in.
# Nothing is pip-installed when a step starts (components use install_kfp_package=False).
#
# Build from the repository root with `make image` (it starts a Docker engine and bootstraps the base from Debian's
# packages where none can be pulled), or by hand; the tag must be the package version (kfp_llmops/images.py):
#   docker build --network host -f containers/runtime.Dockerfile \
#     -t ghcr.io/kfp-llmops/runtime:$(python -c 'import kfp_llmops; print(kfp_llmops.__version__)') .
# Build arguments for a closed network:
#   BASE_IMAGE       a Debian bookworm image with python3 and python3-venv (default: the pinned python slim image)
#   TORCH_INDEX_URL  the wheel index torch comes from; empty: the torch wheel in TORCH_WHEELS (its dependencies from
#                    PIP_INDEX_URL)
#   TORCH_WHEELS     a folder in the build context holding torch wheels (containers/wheels/, empty in git)
#   PIP_INDEX_URL    a PyPI mirror for everything else
#   CA_BUNDLE        the CA bundle a TLS-intercepting proxy needs, as a path under containers/certs/ (build stage only:
#                    the runtime image never sees it)
# GPU image (`make image-gpu`): TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 and EXTRAS="[gpu]"
# (bitsandbytes for QLoRA).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

# ---- build: one virtual environment, torch first, then the package against constraints.txt ----
FROM ${BASE_IMAGE} AS build
LABEL org.kfp-llmops.stage=build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_WHEELS=containers/wheels
ARG EXTRAS=""
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG CA_BUNDLE=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_INDEX_URL=${PIP_INDEX_URL} PATH=/opt/venv/bin:${PATH}
# binutils: strip, for slim-venv.sh (this stage only)
RUN apt-get update && apt-get install -y --no-install-recommends binutils=2.40-2 && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
COPY ${TORCH_WHEELS}/ /tmp/wheels/
COPY containers/certs/ /src/containers/certs/
# torch first, pinned and from the chosen source, so that nothing later swaps in another build.
RUN if [ -n "${CA_BUNDLE}" ]; then export PIP_CERT="/src/${CA_BUNDLE}"; fi; \
    if [ -n "${TORCH_INDEX_URL}" ]; then \
        pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url "${PIP_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    else \
        wheel="$(ls /tmp/wheels/torch-${TORCH_VERSION}[+-]*.whl 2>/dev/null | head -n 1)"; \
        [ -n "${wheel}" ] || { echo "TORCH_INDEX_URL is empty and ${TORCH_WHEELS} holds no torch-${TORCH_VERSION} wheel" >&2; exit 1; }; \
        pip install "${wheel}"; \
    fi
# The dependencies, against constraints.txt, from the package's metadata alone (its version from __init__.py): this
# layer is rebuilt when they change, not when the code does.
COPY constraints.txt pyproject.toml setup.py README.md /src/
COPY kfp_llmops/__init__.py /src/kfp_llmops/__init__.py
RUN if [ -n "${CA_BUNDLE}" ]; then export PIP_CERT="/src/${CA_BUNDLE}"; fi; \
    for folder in components pipelines cli; do mkdir -p /src/${folder} && touch /src/${folder}/__init__.py; done \
    && pip install -c /src/constraints.txt "/src${EXTRAS}"
# The package itself, over the stand-in above; nothing else changes (--no-deps), and nothing is fetched: it builds
# with the setuptools already in the environment (torch brings it).
COPY kfp_llmops /src/kfp_llmops
COPY components /src/components
COPY pipelines /src/pipelines
COPY cli /src/cli
# (the stand-ins' build/ goes first: setuptools copies a source only when it is newer than its built copy, and the
# stand-in __init__.py files are newer than the checkout's)
RUN rm -rf /src/build && pip install --no-deps --no-build-isolation --force-reinstall /src \
    && pip uninstall -y pip
COPY containers/slim-venv.sh /src/containers/
RUN /src/containers/slim-venv.sh

# ---- runtime: the environment, a compiler for torch.compile, a non-root user; nothing else ----
FROM ${BASE_IMAGE}
# g++ (Debian bookworm's, pinned): torch.compile builds its generated kernels with it (TrainConfig torch_compile).
RUN apt-get update && apt-get install -y --no-install-recommends g++=4:12.2.0-3 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
    && groupadd --gid 10001 kfp && useradd --uid 10001 --gid kfp --create-home --shell /usr/sbin/nologin kfp
COPY --from=build /opt/venv /opt/venv
# Every cache and config a step writes goes under /tmp, so that the image runs with a read-only root filesystem and
# a tmpfs (or emptyDir) at /tmp, as Kubernetes Pod Security "restricted" would run it.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/kfp \
    XDG_CACHE_HOME=/tmp/cache \
    XDG_CONFIG_HOME=/tmp/config \
    HF_HOME=/tmp/cache/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MPLCONFIGDIR=/tmp/cache/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/cache/torchinductor \
    TRITON_CACHE_DIR=/tmp/cache/triton \
    GX_ANALYTICS_ENABLED=false
# The image's own check, from / so that nothing but the installed package can answer the imports.
RUN cd / && python3 -c "import kfp_llmops.components, kfp_llmops.pipelines, kfp_llmops.cli, kfp, torch, transformers, peft, onnx, \
onnxruntime, onnxruntime_genai, kserve, great_expectations, pyarrow.parquet, scipy.stats, pandas, matplotlib, mlflow, lm_eval, \
google.cloud.aiplatform, tritonclient.http; x = torch.randn(64, 64); assert torch.isfinite(x @ x).all(); \
from kfp_llmops.cli import build_parser; build_parser(); print('torch', torch.__version__)"
USER 10001:10001
WORKDIR /home/kfp
