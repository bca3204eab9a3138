"""Work in this process, in local workers, or on Ray: the same results in the same order."""

import operator
import os
import sys

import pytest

from lmm_envs.errors import MissingDependencyError, UnknownPieceError
from lmm_envs.parallel import THREAD_VARIABLES, require_ray, run_tasks


def test_results_keep_task_order_in_process_and_in_workers():
    seen = []
    assert run_tasks(operator.neg, [1, 2, 3], workers=1, on_result=seen.append) == [-1, -2, -3]
    assert seen == [-1, -2, -3]
    seen.clear()
    assert run_tasks(operator.neg, list(range(7)), workers=2, on_result=seen.append) == [-i for i in range(7)]
    assert sorted(seen) == sorted(-i for i in range(7))


def worker_pid(_task) -> int:
    return os.getpid()


def test_a_fresh_worker_per_task_runs_each_task_in_a_process_of_its_own():
    """A training run's gigabytes go back when it ends: no task shares its worker with another."""
    pids = run_tasks(worker_pid, range(4), workers=2, fresh_worker_per_task=True)
    assert len(set(pids)) == 4 and os.getpid() not in pids


def test_every_worker_gets_one_thread_the_fresh_ones_too(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert run_tasks(os.getenv, ["OMP_NUM_THREADS"] * 4, workers=2, fresh_worker_per_task=True) == ["1"] * 4
    assert "OMP_NUM_THREADS" not in os.environ  # and this process's own setting is as it was


def test_a_worker_error_is_raised_as_itself():
    from lmm_envs.music.corpus import piece_info

    with pytest.raises(UnknownPieceError, match="unknown piece id"):
        run_tasks(piece_info, ["bach/bwv66.6", "bach/nope"], workers=2)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "lmm-envs\[ray\]"'):
        require_ray()


def test_ray_is_really_installed_in_ci():
    if os.environ.get("CI"):
        import ray  # noqa: F401  CI installs the ray extra, so the Ray tests below run there


def test_ray_tasks_come_back_in_order_and_raise_as_themselves(local_ray):
    from lmm_envs.music.corpus import piece_info

    seen = []
    assert run_tasks(operator.neg, list(range(5)), ray_address=local_ray, on_result=seen.append) == [-i for i in range(5)]
    assert sorted(seen) == sorted(-i for i in range(5))
    with pytest.raises(UnknownPieceError, match="unknown piece id"):
        run_tasks(piece_info, ["bach/nope"], ray_address=local_ray)
    # Ray pickles a lambda by value; its workers cannot import this test module by name
    pids = run_tasks(lambda _task: os.getpid(), range(3), ray_address=local_ray, fresh_worker_per_task=True)
    assert len(set(pids)) == 3
