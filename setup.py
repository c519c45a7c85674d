"""Maps the top-level ``components/``, ``pipelines/`` and ``cli/`` folders into the ``kfp_llmops`` package.

Everything else lives in pyproject.toml; this file exists only because the package list is computed.
"""

from setuptools import find_packages, setup

FOLDERS = ("components", "pipelines", "cli")  # each becomes kfp_llmops.<folder>
package_dir = {"kfp_llmops": "kfp_llmops", **{f"kfp_llmops.{folder}": folder for folder in FOLDERS}}
packages = [
    *(f"kfp_llmops.{p}" if p else "kfp_llmops" for p in [""] + find_packages("kfp_llmops")),
    *(f"kfp_llmops.{folder}{'.' + p if p else ''}" for folder in FOLDERS for p in [""] + find_packages(folder)),
]
setup(packages=packages, package_dir=package_dir)
