"""The shared layer of the native vector envs: :class:`BatchedVectorEnv` (sub-envs that keep their own seeded
episode starts, autoreset in gymnasium's ``NEXT_STEP`` mode, the per-env slots observation windows are gathered
from) and the array helpers every task uses (:func:`row_windows`, :func:`as_pixels`, :func:`env_seeds`,
:func:`metrics_info`).

``infos`` carry what training needs, the metrics of the episodes that end: ``infos["episode_metrics"]`` (a dict of
arrays, one value per ended env) and ``infos["episode_metrics_index"]`` (which envs). The single envs' per-step
diagnostics (piece id, frame, time, ...) are not batched; step a single env for those.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lmm_envs.errors import ConfigError


def row_windows(table: np.ndarray, width: int) -> np.ndarray:
    """Every ``width``-long window along the last axis of a C-contiguous uint8 ``table`` ``(..., L)``, as a view
    ``(..., L - width + 1)`` whose elements are whole window rows (numpy void of ``width`` bytes).

    A fancy index into it copies each row of a window as one element, not byte by byte: while envs step, cutting
    64 envs' observation windows takes about three quarters of the time the same index on a
    ``sliding_window_view`` takes.
    :func:`as_pixels` turns what it gathers back into pixels.
    """
    if table.dtype != np.uint8 or not table.flags.c_contiguous:
        raise ValueError("row_windows needs a C-contiguous uint8 table")
    shape = (*table.shape[:-1], table.shape[-1] - width + 1)
    return np.ndarray(shape, dtype=np.dtype((np.void, width)), buffer=table, strides=table.strides)


def as_pixels(windows: np.ndarray) -> np.ndarray:
    """Window rows gathered from :func:`row_windows` ``(..., rows)`` -> their uint8 pixels ``(..., rows, width)``."""
    return windows.view(np.uint8).reshape(*windows.shape, windows.itemsize)


def env_seeds(seed: int | list | None, n: int) -> list:
    """One reset seed per sub-env, as ``SyncVectorEnv`` hands them out (``seed + i`` from one integer)."""
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    if len(seed) != n:
        raise ConfigError(f"reset got {len(seed)} seeds for {n} envs")
    return list(seed)


def metrics_info(ended: np.ndarray, metrics_of) -> dict:
    """``infos`` of a batched step: ``metrics_of(i)`` of each env ``i`` in ``ended`` as a dict of arrays under
    ``episode_metrics``, and ``ended`` under ``episode_metrics_index``; empty when no episode ended."""
    if not len(ended):
        return {}
    metrics = [metrics_of(i) for i in ended]
    return {"episode_metrics": {k: np.array([m[k] for m in metrics]) for k in metrics[0]},
            "episode_metrics_index": ended}


class BatchedVectorEnv(VectorEnv):
    """What the native vector envs share: sub-envs that keep each episode's seeded choices, ``NEXT_STEP``
    autoreset, and observations that subclasses put as fresh arrays into ``self._obs``.

    A subclass holds ``self.envs`` and implements ``_load(i)`` (take sub-env i's freshly reset episode into the
    batch) and ``_observe()`` (fill ``self._obs`` for every env), cutting observation windows from its per-env
    tables through ``_windows``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    envs: list

    @staticmethod
    def _sub_envs(env_class: type[gym.Env], num_envs: int, kwargs: dict) -> list:
        """``num_envs`` single envs of ``env_class`` built with ``kwargs``, after checking ``num_envs``."""
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        return [env_class(**kwargs) for _ in range(num_envs)]

    def _make_spaces(self, env: gym.Env, num_envs: int, numpy_observations: bool = True) -> None:
        """Spaces from sub-env ``env``; with ``numpy_observations``, ``self._obs`` holds a numpy array per key."""
        num_envs = int(num_envs)
        self.num_envs = num_envs
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, num_envs)
        self.action_space = batch_space(env.action_space, num_envs)
        spaces = env.observation_space.spaces if numpy_observations else {}
        self._obs = {k: np.zeros((num_envs, *s.shape), dtype=s.dtype) for k, s in spaces.items()}
        self._window_views: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def _windows(self, name: str, table: np.ndarray, width: int) -> np.ndarray:
        """:func:`row_windows` of the per-env table ``name``, made once per table (a grown table gets a new view)."""
        cached = self._window_views.get(name)
        if cached is None or cached[0] is not table:
            cached = self._window_views[name] = (table, row_windows(table, width))
        return cached[1]

    def _load(self, i: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _observe(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        super().reset(seed=seed if seed is None or isinstance(seed, (int, np.integer)) else None)
        for i, (env, s) in enumerate(zip(self.envs, env_seeds(seed, self.num_envs), strict=True)):
            env.reset(seed=s, options=options)
            self._load(i)
        self._needs_reset[:] = False
        self._observe()
        return dict(self._obs), {}

    def _reset_finished(self) -> np.ndarray:
        """Reset the sub-envs whose episode ended last step; returns the mask of those that act this step."""
        for i in np.flatnonzero(self._needs_reset):
            self.envs[i].reset()
            self._load(i)
        return ~self._needs_reset

    def reset_ended(self) -> dict[str, np.ndarray]:
        """Reset now, rather than on the next step, the sub-envs whose episode the last step ended, and return every
        env's observation: a same-step autoreset, as Stable-Baselines3's ``VecEnv`` expects (the caller keeps the
        ended episodes' last observations from the step first)."""
        self._reset_finished()
        self._needs_reset[:] = False
        self._observe()
        return dict(self._obs)

    def _ended_info(self, metrics_of) -> dict:
        """``infos`` of a step: the episode metrics of the envs that ended (``metrics_of(i)``), by index."""
        return metrics_info(np.flatnonzero(self._needs_reset), metrics_of)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
