"""lmm/ScoreFollowing-v0 batched in numpy: :class:`ScoreFollowingVectorEnv` steps N episodes in one computation (the
tempo, pointer, error, reward and lost logic on arrays; observation windows gathered from per-env slots). Episodes
start as the single env's do (each sub-env keeps its own seeded RNG and piece choice), so for the same seeds it
returns the same observations and rewards as ``SyncVectorEnv`` over single envs, bit for bit.
:class:`ScoreFollowingBatch` is what it shares with the torch version (:mod:`.score_following_torch`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmm_envs.audio.features import FPS
from lmm_envs.envs import MAX_EPISODE_STEPS
from lmm_envs.envs.base import AUDIO_WINDOW, SCORE_WINDOW
from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP, ScoreFollowingEnv
from lmm_envs.envs.vector.base import BatchedVectorEnv, as_pixels
from lmm_envs.errors import InvalidActionError


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
