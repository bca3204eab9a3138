"""Native vector envs of the motion tasks (lmm/SightReading-v0, lmm/PlayByEar-v0): N episodes in one numpy step.

Actions become an ``(N, 88)`` key matrix; :class:`~lmm_envs.audio.keyboard.BatchedKeyboardPlayer` sounds every
episode's keys at once; rewards, the episode records and the observation windows are array operations over the
N episodes. Each sub-env keeps its own seeded RNG, piece choice and target, so for the same seeds the batch gives
what ``SyncVectorEnv`` over single envs gives, bit for bit (``NEXT_STEP`` autoreset, as gymnasium's default).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lmm_envs.audio.features import N_BINS
from lmm_envs.audio.keyboard import N_KEYS, VELOCITY_LEVELS, BatchedKeyboardPlayer, velocity_scale
from lmm_envs.envs import MAX_EPISODE_STEPS
from lmm_envs.envs.base import AUDIO_WINDOW, SCORE_WINDOW, audio_pixels
from lmm_envs.envs.sight_reading import PlayByEarEnv, PlayingEnv, SightReadingEnv
from lmm_envs.envs.vector.base import BatchedVectorEnv, as_pixels
from lmm_envs.errors import InvalidActionError


class PlayingVectorEnv(BatchedVectorEnv):
    """N episodes of a motion task stepped together (see the module docstring); same kwargs as the env."""

    env_class: type[PlayingEnv]

    def __init__(self, num_envs: int = 1, max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs: Any):
        self.envs = self._sub_envs(self.env_class, num_envs, kwargs)
        first = self.envs[0]
        self._make_spaces(first, num_envs)
        self.max_episode_steps = int(max_episode_steps)
        self.mono, self.velocity, self.reward_type = first.mono, first.velocity, first.reward_type
        self.key_low, self.n_keys = first.key_low, first.n_keys
        self._high = self._action_high()
        n = num_envs
        self._player = BatchedKeyboardPlayer(first.keyboard, n)
        self._frame = np.zeros(n, dtype=np.int64)
        self._length = np.zeros(n, dtype=np.int64)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._keys_obs = np.zeros((n, self.n_keys), dtype=np.int8)
        self._slots: dict[str, np.ndarray] = {}
        self._index = np.arange(n)

    def _action_high(self) -> np.ndarray:
        """Exclusive upper bound of each action component, shaped like one env's action."""
        space = self.single_action_space
        if isinstance(space, gym.spaces.Discrete):
            return np.asarray(space.n)
        if isinstance(space, gym.spaces.MultiDiscrete):
            return np.asarray(space.nvec)
        return np.full(space.shape, 2)  # MultiBinary

    # --- per-env tables ------------------------------------------------------------------------------------
    def _ensure(self, name: str, shape: tuple, length: int, dtype) -> np.ndarray:
        """A ``(num_envs, *shape)`` table; its time axis (``None`` in ``shape``) is grown, never shrunk, to hold
        ``length`` frames."""
        time_axis = 1 + shape.index(None)
        table = self._slots.get(name)
        if table is None or table.shape[time_axis] < length:
            size = [self.num_envs, *shape]
            old = 0 if table is None else table.shape[time_axis]
            size[time_axis] = max(length, 2 * old)
            grown = np.zeros(size, dtype=dtype)
            if table is not None:
                grown[(slice(None),) * time_axis + (slice(0, old),)] = table
            self._slots[name] = table = grown
        return table

    def _window(self, name: str, width: int) -> np.ndarray:
        return self._windows(name, self._slots[name], width)

    def _load(self, i: int) -> None:
        """Take sub-env i's freshly reset episode into the batch (its target into slot i, its records cleared)."""
        env = self.envs[i]
        target = env._target
        n = target.n_frames
        ahead = env._ahead
        self._ensure("ahead", (ahead.shape[1], None), ahead.shape[2], np.uint8)[i, :, :ahead.shape[2]] = ahead[0]
        self._ensure("own_pixels", (N_BINS, None), n + AUDIO_WINDOW, np.uint8)[i, :, :n + AUDIO_WINDOW] = 0
        self._ensure("own_spec", (N_BINS, None), n, np.float32)
        self._ensure("played", (None, N_KEYS), n, bool)
        if self.velocity:
            self._ensure("played_velocity", (None, N_KEYS), n, np.float32)
        if self.reward_type == "audio":
            self._ensure("target_spectrum", (N_BINS, None), n, np.float32)[i, :, :n] = target.spectrum
        else:
            self._ensure("target_keys", (None, N_KEYS), n, bool)[i, :n] = target.keys
        self._player.reset(i)
        self._frame[i] = 0
        self._length[i] = n
        self._elapsed[i] = 0
        self._keys_obs[i] = 0

    # --- stepping --------------------------------------------------------------------------------------------
    def _check_actions(self, actions) -> np.ndarray:
        """Whole numbers inside the action space, one row per env (floats such as SB3's 0./1. MultiBinary
        samples pass, as the single env takes them)."""
        expected = (self.num_envs, *self.single_action_space.shape)
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            a = None
        if a is None or a.shape != expected or not np.all(np.isfinite(a)) or np.any(a != np.round(a)) \
                or np.any(a < 0) or np.any(a >= self._high):
            raise InvalidActionError(f"actions must be whole numbers of shape {expected} inside "
                                     f"{self.single_action_space}, one row per env; got {actions!r}")
        return a.astype(np.int64)

    def _keys(self, a: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The keys down per env ``(N, 88)`` and, with velocities, their strike velocities ``(N, 88)``."""
        n = self.num_envs
        down = np.zeros((n, N_KEYS), dtype=bool)
        velocity = np.zeros((n, N_KEYS)) if self.velocity else None
        if self.mono:
            choice = a[:, 0] if self.velocity else a
            playing = act & (choice > 0)
            rows, keys = self._index[playing], self.key_low + choice[playing] - 1
            down[rows, keys] = True
            if self.velocity:
                velocity[rows, keys] = VELOCITY_LEVELS[a[playing, 1]]
        else:
            span = slice(self.key_low, self.key_low + self.n_keys)
            down[:, span] = (a > 0) & act[:, None]
            if self.velocity:
                velocity[:, span] = np.where(down[:, span], VELOCITY_LEVELS[np.maximum(a - 1, 0)], 0.0)
        return down, velocity

    def step(self, actions):
        a = self._check_actions(actions)
        act = self._reset_finished()
        down, velocity = self._keys(a, act)
        gains = None if velocity is None else velocity_scale(velocity).astype(np.float32)
        sound = np.log1p(self._player.step(down, gains, act))
        rows, f = self._index[act], self._frame[act]
        self._slots["own_spec"][rows, :, f] = sound[act]
        self._slots["own_pixels"][rows, :, f + AUDIO_WINDOW - 1] = audio_pixels(sound[act])
        self._slots["played"][rows, f] = down[act]
        if velocity is not None:
            self._slots["played_velocity"][rows, f] = velocity[act]
        self._keys_obs[act] = down[act, self.key_low:self.key_low + self.n_keys]
        rewards = np.zeros(self.num_envs)
        rewards[act] = self._rewards(sound[act], down[act], rows, f)
        self._frame += act
        terminated = act & (self._frame >= self._length)
        self._elapsed += act
        truncated = act & ~terminated & (self._elapsed >= self.max_episode_steps)
        self._needs_reset = terminated | truncated
        self._observe()
        return dict(self._obs), rewards, terminated, truncated, self._ended_info(self._episode_metrics)

    def _rewards(self, sound: np.ndarray, down: np.ndarray, rows: np.ndarray, f: np.ndarray) -> np.ndarray:
        """The single env's per-frame reward, for the stepping envs at once (same float operations)."""
        if self.reward_type == "audio":
            target = self._slots["target_spectrum"][rows, :, f]
            total = sound.sum(axis=1).astype(np.float64) + target.sum(axis=1).astype(np.float64)
            distance = np.abs(sound - target).sum(axis=1).astype(np.float64)
            safe = np.where(total > 1e-6, total, 1.0)
            return np.where(total > 1e-6, 1.0 - distance / safe, 1.0)
        target = self._slots["target_keys"][rows, f]
        both = np.count_nonzero(target & down, axis=1)
        union = np.count_nonzero(target, axis=1) + np.count_nonzero(down, axis=1) - both
        return np.where(union > 0, both / np.maximum(union, 1), 1.0)

    def _observe(self) -> None:
        idx, f, n = self._index, self._frame, self.num_envs
        self._obs["audio"] = as_pixels(self._window("own_pixels", AUDIO_WINDOW)[idx, :, f]).reshape(
            n, 1, N_BINS, AUDIO_WINDOW)
        ahead = as_pixels(self._window("ahead", SCORE_WINDOW)[idx, :, f])
        self._obs[self.env_class.ahead_key] = ahead.reshape(n, 1, -1, SCORE_WINDOW)
        self._obs["held"] = self._keys_obs.copy()

    def _episode_metrics(self, i: int) -> dict[str, float]:
        """Hand episode i's records to its sub-env (as views) and ask it for the episode's metrics."""
        env = self.envs[i]
        env._frame = int(self._frame[i])
        env._own_spec = self._slots["own_spec"][i]
        env._played = self._slots["played"][i]
        if self.velocity:
            env._played_velocity = self._slots["played_velocity"][i]
        return env.episode_metrics()


class SightReadingVectorEnv(PlayingVectorEnv):
    """lmm/SightReading-v0, N at a time."""

    env_class = SightReadingEnv


class PlayByEarVectorEnv(PlayingVectorEnv):
    """lmm/PlayByEar-v0, N at a time."""

    env_class = PlayByEarEnv
