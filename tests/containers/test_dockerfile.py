"""The runtime image's promises, read from its Dockerfile (no Docker engine runs here)."""

import re
from pathlib import Path

from kfp_llmops import __version__
from kfp_llmops.images import DEFAULT_REGISTRY, RUNTIME_IMAGE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "containers" / "runtime.Dockerfile").read_text()


def _instructions(keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(keyword + " ")]


def test_base_image_is_pinned_not_latest():
    [base] = _instructions("FROM")
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base


def test_runs_as_a_non_root_user():
    users = _instructions("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_torch_is_pinned_to_the_constraints_and_the_package_is_baked_in():
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    torch_version = re.search(r"TORCH_VERSION=(\S+)", DOCKERFILE).group(1)
    assert f"torch=={torch_version}" in constraints
    assert 'pip install -c constraints.txt ".${EXTRAS}"' in DOCKERFILE  # the package, constrained; [gpu] adds bitsandbytes
    assert "bitsandbytes==" in "\n".join(constraints)
    for folder in ("kfp_llmops", "components", "pipelines"):
        assert f"COPY {folder} ./{folder}" in DOCKERFILE


def test_image_reference_is_derived_from_the_package_version():
    assert RUNTIME_IMAGE == f"{DEFAULT_REGISTRY}/runtime:{__version__}"


def test_system_packages_are_pinned_and_the_compiler_for_torch_compile_is_there():
    installs = [line for line in _instructions("RUN") if "apt-get install" in line]
    packages = [word for line in installs for word in line.split("&&")[1].split() if not word.startswith("-")][2:]
    assert packages and all(re.fullmatch(r"[a-z0-9.+-]+=\S+", p) for p in packages), packages
    assert any(p.startswith("g++=") for p in packages)  # TrainConfig torch_compile builds its kernels with it
