"""Work in this process, in local workers, or on Ray: the same results in the same order."""

import operator
import os
import sys

import pytest

from lmm_envs.errors import MissingDependencyError, UnknownPieceError
from lmm_envs.parallel import require_ray, run_tasks


def test_results_keep_task_order_in_process_and_in_workers():
    seen = []
    assert run_tasks(operator.neg, [1, 2, 3], workers=1, on_result=seen.append) == [-1, -2, -3]
    assert seen == [-1, -2, -3]
    seen.clear()
    assert run_tasks(operator.neg, list(range(7)), workers=2, on_result=seen.append) == [-i for i in range(7)]
    assert sorted(seen) == sorted(-i for i in range(7))


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
