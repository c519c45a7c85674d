"""Bytes of the base model fetched from the hub per run, with and without fetch-base-model's one copy
(``make bench-base-model``; ``build/bench/base-model-reads.json`` in the shared result format).

The scale ladder's 478.9M-parameter Llama (``benchmarks/scale.py``'s ``model`` stage, fp32 safetensors, 1.9 GB) is
served as the hub repo ``scale/llama-0.5b`` by ``tests/fake_hub.py`` on 127.0.0.1, and the whole
``finetune-and-rollout`` runs twice with every step in the runtime image (``--runner docker``: each container starts
with an empty Hugging Face cache, as a pod does): ``cache_base_model`` false (what every run did before: each step
that loads the base downloads it, at the commit the first step pinned) and true (one download, into the run's
artifact, which the steps read). The hub counts the bytes it sends. Needs ``make image``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO = "scale/llama-0.5b"


def _fake_hub():
    """tests/fake_hub.py, loaded by its path (tests/ on sys.path would shadow the package with tests/kfp_llmops/)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_hub", ROOT / "tests" / "fake_hub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeHub


def run_once(model_dir: Path, work: Path, cache: bool) -> dict:
    FakeHub = _fake_hub()

    from kfp_llmops.local_run import run_local
    from kfp_llmops.pipelines.registry import build
    from scale import pipeline_arguments

    with FakeHub({REPO: model_dir}, host="127.0.0.1") as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint  # the containers get it (container_run.hub_environment)
        (work / "registry").mkdir(exist_ok=True)
        (work / "registry" / f"cache-{str(cache).lower()}.db").unlink(missing_ok=True)  # a first rollout each time
        arguments = {**pipeline_arguments(model_dir.parent), "base_model": REPO, "cache_base_model": cache,
                     "registry_uri": f"sqlite:///{work / 'registry' / f'cache-{str(cache).lower()}.db'}"}
        start = time.perf_counter()
        summary = run_local(build("finetune-and-rollout", "vertex"), arguments, work / "runs", runner="docker")
        seconds = time.perf_counter() - start
        if not summary.succeeded:
            raise SystemExit(summary.text())
        weights = sum(n for (_, f), n in hub.bytes_served.items() if f.endswith(".safetensors"))
        return {"cache_base_model": cache, "hub_bytes": hub.total_bytes(), "hub_weight_bytes": weights,
                "weight_downloads": weights / sum(p.stat().st_size for p in model_dir.glob("*.safetensors")),
                "wall_s": round(seconds, 1),
                "steps_seconds": {s.name: round(s.seconds, 1) for s in summary.steps if not s.name.startswith("importer")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=ROOT / "build" / "demo-assets")
    args = parser.parse_args(argv)
    from scale import WORK, ensure_model

    model_dir = ensure_model(args.assets)
    work = WORK / "base-model-reads"
    work.mkdir(parents=True, exist_ok=True)
    runs = [run_once(model_dir, work, cache) for cache in (False, True)]
    before, after = runs
    from common import table, write_result

    write_result("base-model-reads", metric="bytes from the hub per run", unit="bytes", ours=after["hub_bytes"],
                 baseline=before["hub_bytes"], baseline_name="each step fetches the base (cache_base_model false)",
                 higher_is_better=False, goal="one download a run: ratio = the steps that load the base",
                 details={"model": REPO, "model_bytes": sum(p.stat().st_size for p in model_dir.glob("*.safetensors")),
                          "runs": runs, "when": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()})
    print(f"{'cache_base_model':<18}{'hub GB':>10}{'weight downloads':>18}{'wall s':>10}")
    for r in runs:
        print(f"{str(r['cache_base_model']).lower():<18}{r['hub_bytes'] / 1e9:>10.2f}{r['weight_downloads']:>18.2f}"
              f"{r['wall_s']:>10.1f}")
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
