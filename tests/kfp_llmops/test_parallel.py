"""ordered_map: chunks in worker processes, results in order, a worker's error raised as it was."""

import os

import pytest

from kfp_llmops.errors import UserInputError
from kfp_llmops.parallel import chunked, cpus, ordered_map


def test_results_come_in_order_from_other_processes_with_a_closure():
    offset = 1000  # a closure: inherited by the forked workers, never pickled

    def work(chunk):
        return [x + offset for x in chunk], os.getpid()

    results = list(ordered_map(work, chunked(list(range(50)), 7), workers=2))
    assert [x for part, _ in results for x in part] == [x + 1000 for x in range(50)]
    assert os.getpid() not in {pid for _, pid in results}
    assert list(ordered_map(work, chunked(list(range(5)), 2), workers=1))[0][1] == os.getpid()


def test_a_workers_error_is_raised_here():
    def work(chunk):
        if 13 in chunk:
            raise UserInputError("data.jsonl:14: bad row")
        return chunk

    with pytest.raises(UserInputError, match="data.jsonl:14: bad row"):
        list(ordered_map(work, chunked(list(range(40)), 5), workers=2))


def test_a_pods_cpu_limit_bounds_the_workers(tmp_path):
    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n")  # resources.limits.cpu: 1.5
    assert cpus(cpu_max=str(limit)) == min(2, len(os.sched_getaffinity(0)))
    limit.write_text("max 100000\n")
    assert cpus(limit=1, cpu_max=str(limit)) == 1 and cpus(cpu_max=str(tmp_path / "none")) >= 1
