#!/usr/bin/env bash
# `make image`: builds the runtime image (containers/runtime.Dockerfile) on this machine, also on a closed network.
#
#  1. A Docker engine: the running one, else dockerd (Debian's docker.io, installed when missing and we are root)
#     started with --bridge=none --iptables=false: no bridge on a private range; builds and containers use the host
#     network.
#  2. The base: BASE_IMAGE if the engine has it or can pull it; else one bootstrapped from Debian's packages
#     (debootstrap --variant=minbase, python3 and python3-venv of bookworm, imported as kfp-llmops/base:bookworm).
#  3. torch: a local torch-<version>+cpu wheel where pip's configured sources have one (copied into
#     containers/wheels/, no index); else the PyTorch CPU index. A CA bundle from pip's config (a TLS-intercepting
#     proxy) goes to containers/certs/ for the build stage only.
#  4. docker build --network host, tagged as kfp_llmops/images.py names it; prints the size.
#
# Variables: IMAGE, BASE_IMAGE, TORCH_VERSION, TORCH_INDEX_URL, EXTRAS, PIP_INDEX_URL, VARIANT (cpu | gpu), PYTHON;
# PRUNE_BUILD_STAGE=1 (default under CI=true) removes the build stage's image afterwards (3.6 GB of layer cache).
# VARIANT=gpu (make image-gpu): CUDA torch from TORCH_INDEX_URL (default the cu128 index) and EXTRAS=[gpu]; never a
# local CPU wheel; tagged <image>-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build

PYTHON="${PYTHON:-python3}"
VARIANT="${VARIANT:-cpu}"
BASE_IMAGE="${BASE_IMAGE:-python:3.11.7-slim-bookworm}"
BOOTSTRAP_BASE="kfp-llmops/base:bookworm"
TORCH_VERSION="${TORCH_VERSION:-$(sed -n 's/^torch==//p' constraints.txt)}"
DEFAULT_IMAGE="$(PYTHONPATH=. "${PYTHON}" -c 'from kfp_llmops.images import RUNTIME_IMAGE; print(RUNTIME_IMAGE)')"
log() { echo "make image: $*" >&2; }
die() { log "error: $*"; exit 1; }

case "${VARIANT}" in
  cpu) IMAGE="${IMAGE:-${DEFAULT_IMAGE}}"; EXTRAS="${EXTRAS:-}" ;;
  gpu) IMAGE="${IMAGE:-${DEFAULT_IMAGE}-gpu}"; EXTRAS="${EXTRAS:-[gpu]}"
       TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu128}"
       [[ "${TORCH_INDEX_URL}" == */cu[0-9]* ]] \
         || die "VARIANT=gpu needs a CUDA wheel index (.../whl/cuNNN) as TORCH_INDEX_URL, got '${TORCH_INDEX_URL}'"
       [[ "${EXTRAS}" == *gpu* ]] || die "VARIANT=gpu needs EXTRAS with gpu (bitsandbytes for QLoRA), got '${EXTRAS}'" ;;
  *) die "VARIANT must be cpu or gpu, got '${VARIANT}'" ;;
esac
[[ -n "${TORCH_VERSION}" ]] || die "no torch== pin in constraints.txt"
[[ "${IMAGE}" == *:* && "${IMAGE##*:}" != latest ]] || die "IMAGE needs a tag other than latest, got '${IMAGE}'"
if [[ "${CHECK_ONLY:-0}" == 1 ]]; then  # the arguments' check, for tests and for machines without an engine
  echo "IMAGE=${IMAGE} VARIANT=${VARIANT} EXTRAS=${EXTRAS} TORCH_VERSION=${TORCH_VERSION} TORCH_INDEX_URL=${TORCH_INDEX_URL:-}"
  exit 0
fi

# 1. the engine
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null \
      || die "no Docker engine runs and dockerd is not installed (Debian: apt-get install docker.io)"
    log "installing Debian's docker.io"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
  fi
  [[ "$(id -u)" == 0 ]] || die "no Docker engine runs; start one (dockerd --bridge=none --iptables=false) as root"
  mkdir -p build
  log "starting dockerd --bridge=none --iptables=false (log: build/dockerd.log)"
  nohup dockerd --bridge=none --iptables=false --ip6tables=false >build/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not come up; see build/dockerd.log"
fi

# 2. the base
if docker image inspect "${BASE_IMAGE}" >/dev/null 2>&1 || docker pull -q "${BASE_IMAGE}" >/dev/null 2>&1; then
  log "base ${BASE_IMAGE}"
elif docker image inspect "${BOOTSTRAP_BASE}" >/dev/null 2>&1; then
  log "${BASE_IMAGE} cannot be pulled; base ${BOOTSTRAP_BASE} (bootstrapped earlier)"
  BASE_IMAGE="${BOOTSTRAP_BASE}"
else
  log "${BASE_IMAGE} cannot be pulled; bootstrapping ${BOOTSTRAP_BASE} from Debian bookworm's packages"
  command -v debootstrap >/dev/null || { [[ "$(id -u)" == 0 ]] || die "debootstrap is not installed"; \
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
  rootfs="$(mktemp -d /tmp/kfp-llmops-rootfs.XXXXXX)"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "${rootfs}" http://deb.debian.org/debian \
    >build/debootstrap.log 2>&1 || die "debootstrap failed; see build/debootstrap.log"
  rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/usr/share/doc/* \
         "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/locale/*
  tar -C "${rootfs}" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "${BOOTSTRAP_BASE}" >/dev/null
  rm -rf "${rootfs}"
  BASE_IMAGE="${BOOTSTRAP_BASE}"
fi

# 3. torch, and pip's CA bundle
rm -f containers/wheels/*.whl containers/certs/*.crt
args=(--build-arg "BASE_IMAGE=${BASE_IMAGE}" --build-arg "TORCH_VERSION=${TORCH_VERSION}" --build-arg "EXTRAS=${EXTRAS}")
if [[ "${VARIANT}" == cpu && -z "${TORCH_INDEX_URL:-}" ]] \
   && "${PYTHON}" -m pip download -q --no-deps --only-binary :all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
        -d containers/wheels "torch==${TORCH_VERSION}+cpu" >/dev/null 2>&1; then
  log "torch from the local wheel $(basename containers/wheels/torch-*.whl)"
  args+=(--build-arg TORCH_INDEX_URL=)
elif [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  args+=(--build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL}")
fi
cert="${PIP_CERT:-$("${PYTHON}" -m pip config get global.cert 2>/dev/null || true)}"
if [[ -n "${cert}" && -f "${cert}" ]]; then
  cp "${cert}" containers/certs/ca-bundle.crt
  args+=(--build-arg CA_BUNDLE=containers/certs/ca-bundle.crt)
fi
[[ -n "${PIP_INDEX_URL:-}" ]] && args+=(--build-arg "PIP_INDEX_URL=${PIP_INDEX_URL}")

# 4. the build
log "docker build ${IMAGE}"
docker build --network host -f containers/runtime.Dockerfile "${args[@]}" -t "${IMAGE}" .
rm -f containers/wheels/*.whl containers/certs/*.crt
if [[ "${CI:-}" == true || "${PRUNE_BUILD_STAGE:-0}" == 1 ]]; then  # the build stage (3.6 GB), kept otherwise as cache
  docker image prune -f --filter label=org.kfp-llmops.stage=build >/dev/null
fi
size="$(docker image inspect -f '{{.Size}}' "${IMAGE}")"
log "built ${IMAGE}: $((size / 1000000)) MB"
