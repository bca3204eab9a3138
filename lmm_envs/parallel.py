"""Embarrassingly parallel work (preparing pieces, evaluation episodes, training runs) in this process, in local
worker processes, or as tasks on a Ray cluster.

:func:`run_tasks` is the one entry point: the same function over a list of task arguments, results back in task
order whatever ran them, so a result does not depend on where it was computed. Ray is optional
(``pip install "lmm-envs[ray]"``); ``ray_address`` is what ``ray.init`` takes: ``"local"`` starts a Ray on this
machine, ``"auto"`` joins the cluster this machine belongs to, ``"ray://HOST:10001"`` a remote one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from lmm_envs.errors import ConfigError, MissingDependencyError

LOCAL_RAY = "local"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers() -> int:
    """The cores this process may use (its CPU affinity where the system reports one)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def require_ray():
    """The ``ray`` module, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError('Ray is not installed; pip install "lmm-envs[ray]" (or drop --ray)') from None
    return ray


def connect_ray(address: str | None = LOCAL_RAY, num_cpus: int | None = None):
    """``ray.init`` once per process: ``address`` ``"local"`` (or None) starts a local Ray with ``num_cpus`` CPUs
    (default: all), anything else joins that cluster. A Ray already running in this process is reused."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = dict(ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    try:
        if address in (None, "", LOCAL_RAY):
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except ConnectionError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({e}); start it with `ray start --head` "
                          "or pass --ray local") from None
    return ray


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    workers: int = 1,
    ray_address: str | None = None,
    on_result: Callable[[Any], None] | None = None,
    num_gpus: float = 0.0,
    fresh_worker_per_task: bool = False,
) -> list[Any]:
    """``[fn(t) for t in tasks]``, in this process (``workers`` 1), in ``workers`` spawned processes, or as Ray
    tasks (``ray_address`` given; each asks for one CPU and ``num_gpus`` GPUs). ``fn`` must be importable by name
    (a module-level function) for the last two. ``on_result`` is called with each result as it arrives (progress
    bars); the list returned is in task order. ``fresh_worker_per_task`` runs every task in a worker of its own,
    which exits with it: for long tasks that hold gigabytes (a training run), so that a finished task's memory goes
    back to the system instead of staying with an idle worker while the others run.
    """
    tasks = list(tasks)
    if ray_address is not None:
        return _run_on_ray(fn, tasks, ray_address, on_result, num_gpus, fresh_worker_per_task)
    if workers <= 1 or len(tasks) <= 1:
        out = []
        for task in tasks:
            out.append(fn(task))
            if on_result is not None:
                on_result(out[-1])
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: dict[int, Any] = {}
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads (torch, Ray)
    # the workers read these as they import numpy: on submit, and later where a fresh worker replaces one
    with _one_thread_per_worker(), ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                                                       max_tasks_per_child=1 if fresh_worker_per_task else None) as pool:
        futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if on_result is not None:
                on_result(results[futures[future]])
    return [results[i] for i in range(len(tasks))]


@contextlib.contextmanager
def environment(**values: str):
    """Environment variables set to ``values`` inside the block and restored after (set or unset as they were)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _one_thread_per_worker():
    """One BLAS/OpenMP thread in each worker started inside: with one per core in each of several workers the
    cores are oversubscribed (preparing pieces on 2 workers ran slower than on 1). Ray sets the same itself."""
    return environment(**dict.fromkeys(THREAD_VARIABLES, "1"))


def add_ray_option(parser, what: str) -> None:
    """The ``--ray [ADDRESS]`` option of every command that can run its work on Ray."""
    parser.add_argument("--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
                        help=f"run on Ray ({what}): no ADDRESS starts a local Ray, 'auto' joins this machine's "
                             "cluster, ray://HOST:10001 a remote one; needs pip install 'lmm-envs[ray]'")


def _call(fn: Callable[[Any], Any], task: Any) -> Any:
    """What a Ray task runs: ``fn`` travels as an argument, so any picklable callable works (builtins too)."""
    return fn(task)


def _run_on_ray(fn, tasks, address, on_result, num_gpus, fresh_worker_per_task=False) -> list[Any]:
    ray = connect_ray(address)
    if num_gpus and not ray.cluster_resources().get("GPU"):
        num_gpus = 0.0  # a cluster without GPUs runs the tasks on CPUs rather than waiting forever
    options: dict[str, Any] = dict(num_cpus=1, num_gpus=num_gpus, max_retries=0)
    if fresh_worker_per_task:
        options["max_calls"] = 1  # Ray's worker exits after the task, as a local one does
    remote = ray.remote(**options)(_call)
    pending = {remote.remote(fn, task): i for i, task in enumerate(tasks)}
    results: dict[int, Any] = {}
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
            try:
                results[pending[ref]] = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # the task's own exception, as a local run would raise it
                cause = getattr(e, "cause", None)
                raise (cause if isinstance(cause, Exception) else e) from None
            if on_result is not None:
                on_result(results[pending[ref]])
    return [results[i] for i in range(len(tasks))]
