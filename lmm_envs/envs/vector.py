"""Native vector envs, registered as each id's ``vector_entry_point``:
``gym.make_vec(ID, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``.

:class:`ScoreFollowingVectorEnv` steps N score-following episodes in one numpy computation (the tempo, pointer,
error, reward and lost logic on arrays; observation windows gathered from per-env slots). Episodes start as
the single env's do (each sub-env keeps its own seeded RNG and piece choice), so for the same seeds it returns the
same observations and rewards as ``SyncVectorEnv`` over single envs, bit for bit. Autoreset follows gymnasium's
default ``NEXT_STEP`` mode: the step after an episode ends resets that sub-env and ignores its action.

``infos`` carry what training needs, the metrics of the episodes that end: ``infos["episode_metrics"]`` (a dict of
arrays, one value per ended env) and ``infos["episode_metrics_index"]`` (which envs). The single envs' per-step
diagnostics (piece id, frame, time, ...) are not batched; step a single env for those.

With ``device="cuda"`` (or ``"cpu"``, ``"auto"``), ScoreFollowing's entry point gives the torch batched env of
:mod:`lmm_envs.envs.vector_torch` instead, whose observations and rewards are tensors on that device.

The other ids' batched envs build on :class:`BatchedVectorEnv`: :mod:`lmm_envs.envs.vector_accompaniment` and
:mod:`lmm_envs.envs.vector_playing` (the motion tasks).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lmm_envs.audio.features import FPS
from lmm_envs.envs import MAX_EPISODE_STEPS
from lmm_envs.envs.base import AUDIO_WINDOW, SCORE_WINDOW
from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP, ScoreFollowingEnv
from lmm_envs.errors import ConfigError, InvalidActionError


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


def make_score_following_vector(num_envs: int = 1, device: str | None = None, **kwargs: Any) -> VectorEnv:
    """lmm/ScoreFollowing-v0's ``vector_entry_point``: the numpy :class:`ScoreFollowingVectorEnv`, or with
    ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``) the torch one, whose arrays stay on that device
    (:class:`lmm_envs.envs.vector_torch.TorchScoreFollowingVectorEnv`)."""
    if device is None:
        return ScoreFollowingVectorEnv(num_envs, **kwargs)
    from lmm_envs.envs.vector_torch import TorchScoreFollowingVectorEnv

    return TorchScoreFollowingVectorEnv(num_envs, device=device, **kwargs)


class ScoreFollowingBatch(BatchedVectorEnv):
    """What the numpy and the torch batched ScoreFollowing envs share: their sub-envs, spaces and step settings."""

    def _set_up(self, num_envs: int, max_episode_steps: int, kwargs: dict, numpy_observations: bool = True) -> None:
        self.envs = self._sub_envs(ScoreFollowingEnv, num_envs, kwargs)
        first = self.envs[0]
        self._make_spaces(first, num_envs, numpy_observations)
        self.max_episode_steps = int(max_episode_steps)
        self.discrete = first.action_type == "discrete"
        self.reward_width = first.reward_width
        self.lost_tolerance = first.lost_tolerance
        self.lost_patience = first.lost_patience
        self.terminate_on_lost = first.terminate_on_lost


class ScoreFollowingVectorEnv(ScoreFollowingBatch):
    """N lmm/ScoreFollowing-v0 episodes stepped together (see the module docstring); same kwargs as the env."""

    def __init__(self, num_envs: int = 1, max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs: Any):
        self._set_up(num_envs, max_episode_steps, kwargs)
        n = self.num_envs
        self._frame = np.zeros(n, dtype=np.int64)
        self._pointer = np.zeros(n)
        self._ratio = np.ones(n)
        self._off = np.zeros(n, dtype=np.int64)
        self._lost = np.zeros(n, dtype=bool)
        self._last = np.zeros(n, dtype=np.int64)
        self._end = np.zeros(n)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._slots: dict[str, np.ndarray] = {}
        self._index = np.arange(n)

    # --- episodes -----------------------------------------------------------------------------------------
    def _ensure(self, name: str, rows: int, length: int, dtype) -> np.ndarray:
        """A per-env slot table ``(num_envs, rows, length)``, grown (never shrunk) to fit the longest piece."""
        table = self._slots.get(name)
        if table is None or table.shape[-1] < length:
            grown = np.zeros((self.num_envs, rows, max(length, 2 * (0 if table is None else table.shape[-1]))),
                             dtype=dtype)
            if table is not None:
                grown[..., :table.shape[-1]] = table
            self._slots[name] = table = grown
        return table

    def _load(self, i: int) -> None:
        """Take sub-env i's freshly reset episode into the batch state (its arrays into slot i)."""
        env = self.envs[i]
        spec, roll, truth = env._spec, env._roll, env._truth
        self._ensure("audio", spec.shape[1], spec.shape[2], np.uint8)[i, :, :spec.shape[2]] = spec[0]
        self._ensure("score", roll.shape[1], roll.shape[2], np.uint8)[i, :, :roll.shape[2]] = roll[0]
        self._ensure("truth", 1, truth.size, np.float64)[i, 0, :truth.size] = truth
        self._ensure("trajectory", 1, truth.size, np.float64)[i, 0, :truth.size] = 0.0
        self._frame[i] = 0
        self._pointer[i] = 0.0
        self._ratio[i] = 1.0
        self._off[i] = 0
        self._lost[i] = False
        self._last[i] = env._last_frame
        self._end[i] = env._score_end
        self._elapsed[i] = 0

    def _observe(self) -> None:
        self._gather(np.zeros(self.num_envs, dtype=bool))

    def _check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        if self.discrete:
            if a.shape != (self.num_envs,) or a.dtype.kind not in "iu" or a.min() < 0 or a.max() > 2:
                raise InvalidActionError(f"actions must be {self.num_envs} integers in 0..2, got {actions!r}")
            return a.astype(np.int64)
        a = a.astype(np.float64).reshape(self.num_envs, -1) if a.size == self.num_envs else a
        if a.shape != (self.num_envs, 1) or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1 + 1e-6):
            raise InvalidActionError(f"actions must be finite, in [-1, 1], shape ({self.num_envs}, 1)")
        return a.astype(np.float32).astype(np.float64)[:, 0]

    def step(self, actions):
        a = self._check_actions(actions)
        n = self.num_envs
        rewards = np.zeros(n)
        act = self._reset_finished()
        if self.discrete:
            ratio = np.minimum(np.maximum(self._ratio + (a - 1) * TEMPO_STEP, 0.0), MAX_RATIO)
        else:
            ratio = np.where(a <= 0, 1.0 + a, 1.0 + a * (MAX_RATIO - 1.0))
        self._ratio = np.where(act, ratio, self._ratio)
        self._frame += act
        self._pointer = np.where(act, np.minimum(self._pointer + self._ratio / FPS, self._end), self._pointer)
        truth = self._gather(act)
        error = np.abs(self._pointer - truth)
        rewards[act] = np.maximum(0.0, 1.0 - error[act] / self.reward_width)
        self._off = np.where(act, np.where(error > self.lost_tolerance, self._off + 1, 0), self._off)
        lost_now = act & (self._off >= self.lost_patience)
        for i in np.flatnonzero(lost_now & ~self._lost):
            self.envs[i]._lost_time = (self._frame[i] - self.lost_patience + 1) / FPS
        self._lost |= lost_now
        terminated = act & ((self._frame >= self._last) | (lost_now & self.terminate_on_lost))
        self._elapsed += act
        truncated = act & ~terminated & (self._elapsed >= self.max_episode_steps)
        self._needs_reset = terminated | truncated
        return dict(self._obs), rewards, terminated, truncated, self._ended_info(self._episode_metrics)

    def _episode_metrics(self, i: int) -> dict[str, float]:
        env = self.envs[i]
        env._frame = int(self._frame[i])
        env._trajectory = self._slots["trajectory"][i, 0, :env._trajectory.size].copy()
        return env.episode_metrics()

    def _gather(self, act: np.ndarray) -> np.ndarray:
        """Record the pointers, read the true positions and cut the observation windows, for all envs at once."""
        idx, f = self._index, self._frame
        self._slots["trajectory"][idx[act], 0, f[act]] = self._pointer[act]
        truth = self._slots["truth"][idx, 0, f]
        columns = (self._pointer * FPS + 0.5).astype(np.int64)
        n = self.num_envs
        audio = self._windows("audio", self._slots["audio"], AUDIO_WINDOW)[idx, :, f]
        score = self._windows("score", self._slots["score"], SCORE_WINDOW)[idx, :, columns]
        self._obs["audio"] = as_pixels(audio).reshape(n, 1, -1, AUDIO_WINDOW)
        self._obs["score"] = as_pixels(score).reshape(n, 1, -1, SCORE_WINDOW)
        self._obs["tempo"] = self._ratio.astype(np.float32).reshape(n, 1)
        return truth
