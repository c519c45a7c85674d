"""The runtime image's promises, read from its Dockerfile and build script (the image itself, built and run:
test_pipeline_in_image.py, marked container)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kfp_llmops import __version__
from kfp_llmops.images import DEFAULT_REGISTRY, RUNTIME_IMAGE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "containers" / "runtime.Dockerfile").read_text()


def _instructions(keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(keyword + " ")]


def test_base_image_is_pinned_not_latest_and_both_stages_use_it():
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", default), default
    assert _instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]


def test_runs_as_a_non_root_user():
    users = _instructions("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_torch_is_pinned_to_the_constraints_and_the_package_is_baked_in():
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    torch_version = re.search(r"TORCH_VERSION=(\S+)", DOCKERFILE).group(1)
    assert f"torch=={torch_version}" in constraints
    assert 'pip install -c /src/constraints.txt "/src${EXTRAS}"' in DOCKERFILE  # constrained; [gpu] adds bitsandbytes
    # the dependency layer comes before the code, which is installed over it with nothing else changed
    assert DOCKERFILE.index('"/src${EXTRAS}"') < DOCKERFILE.index("COPY kfp_llmops /src/kfp_llmops")
    assert "pip install --no-deps --no-build-isolation --force-reinstall /src" in DOCKERFILE
    # the stand-ins' build/ removed first: setuptools would keep their (newer) empty __init__.py files
    assert "RUN rm -rf /src/build && pip install --no-deps" in DOCKERFILE
    assert "bitsandbytes==" in "\n".join(constraints)
    for folder in ("kfp_llmops", "components", "pipelines", "cli"):
        assert f"COPY {folder} /src/{folder}" in DOCKERFILE
    assert "COPY --from=build /opt/venv /opt/venv" in DOCKERFILE  # the runtime stage takes the environment, not /src


def test_the_image_check_runs_where_no_source_folder_shadows_the_installed_package():
    check = next(line for line in _instructions("RUN") if "import kfp_llmops.components" in line)
    assert check.startswith("cd / &&")


def test_caches_point_under_tmp_for_a_read_only_root():
    for var in ("XDG_CACHE_HOME", "HF_HOME", "MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR"):
        assert re.search(rf"{var}=/tmp/", DOCKERFILE), var


def _check_build(**env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "containers" / "build-image.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "CHECK_ONLY": "1", **env})


def test_build_arguments_cpu_and_gpu_variants():
    cpu = _check_build()
    assert cpu.returncode == 0, cpu.stderr
    assert f"IMAGE={RUNTIME_IMAGE} VARIANT=cpu EXTRAS= TORCH_VERSION=2.13.0" in cpu.stdout
    gpu = _check_build(VARIANT="gpu")
    assert gpu.returncode == 0, gpu.stderr
    assert f"IMAGE={RUNTIME_IMAGE}-gpu VARIANT=gpu EXTRAS=[gpu]" in gpu.stdout and "/whl/cu128" in gpu.stdout


@pytest.mark.parametrize("env, message", [
    ({"VARIANT": "gpu", "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cpu"}, "needs a CUDA wheel index"),
    ({"VARIANT": "gpu", "EXTRAS": "[dev]"}, "needs EXTRAS with gpu"),
    ({"VARIANT": "tpu"}, "VARIANT must be cpu or gpu"),
    ({"IMAGE": "example.com/runtime:latest"}, "a tag other than latest"),
])
def test_build_arguments_that_cannot_work_are_refused(env, message):
    result = _check_build(**env)
    assert result.returncode == 1 and message in result.stderr, result.stderr


def test_image_reference_is_derived_from_the_package_version():
    assert RUNTIME_IMAGE == f"{DEFAULT_REGISTRY}/runtime:{__version__}"


def test_system_packages_are_pinned_and_the_compiler_for_torch_compile_is_there():
    installs = [line for line in _instructions("RUN") if "apt-get install" in line]
    packages = [word for line in installs for word in line.split("&&")[1].split()[2:]
                if not word.startswith("-") and word != "\\"]
    assert packages and all(re.fullmatch(r"[a-z0-9.+-]+=\S+", p) for p in packages), packages
    assert any(p.startswith("g++=") for p in packages)  # TrainConfig torch_compile builds its kernels with it


def test_every_copied_path_is_in_the_build_context():
    """.dockerignore excludes everything but what the Dockerfile copies: a folder copied and not let in fails the build."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    sources = [src for copy in _instructions("COPY") if not copy.startswith("--from")
               for src in copy.split()[:-1] if "${" not in src]
    assert sources, "no COPY instructions found"
    missing = [src for src in sources if not any(src.rstrip("/") == a or src.startswith(a + "/") for a in allowed)]
    assert missing == [], f"copied but excluded by .dockerignore: {missing}"
