"""Maps the top-level ``components/`` and ``pipelines/`` folders into the ``kfp_llmops`` package.

Everything else lives in pyproject.toml; this file exists only because the package list is computed.
"""

from setuptools import find_packages, setup

package_dir = {"kfp_llmops": "kfp_llmops", "kfp_llmops.components": "components", "kfp_llmops.pipelines": "pipelines"}
packages = [
    *(f"kfp_llmops.{p}" if p else "kfp_llmops" for p in [""] + find_packages("kfp_llmops")),
    *(f"kfp_llmops.components{'.' + p if p else ''}" for p in [""] + find_packages("components")),
    *(f"kfp_llmops.pipelines{'.' + p if p else ''}" for p in [""] + find_packages("pipelines")),
]
setup(packages=packages, package_dir=package_dir)
