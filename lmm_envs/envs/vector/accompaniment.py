"""The native vector env of lmm/Accompaniment-v0: N duets stepped in one numpy computation.

Waiting, the rewards of plays, misses, extras, the end of an episode and the observation windows are array
operations over the N episodes. The one thing done per episode is sounding an event an agent plays (its chord
added into that episode's mix), which the sub-env itself does into the batch's pixel slot. Each sub-env keeps its
own seeded RNG and piece choice, so for the same seeds the batch gives what ``SyncVectorEnv`` over single envs
gives, bit for bit (``NEXT_STEP`` autoreset, as gymnasium's default).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmm_envs.audio.features import FPS, N_BINS
from lmm_envs.audio.keyboard import VELOCITY_LEVELS
from lmm_envs.envs import MAX_EPISODE_STEPS
from lmm_envs.envs.accompaniment import EXTRA_PENALTY, MISS_PENALTY, WAIT, AccompanimentEnv
from lmm_envs.envs.base import AUDIO_WINDOW, SCORE_WINDOW
from lmm_envs.envs.vector.base import BatchedVectorEnv, as_pixels
from lmm_envs.errors import InvalidActionError

_EVENT_TABLES = ("target_times", "deadline", "score_column", "target_velocity")


class AccompanimentVectorEnv(BatchedVectorEnv):
    """lmm/Accompaniment-v0, N at a time (see the module docstring); same kwargs as the env."""

    def __init__(self, num_envs: int = 1, max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs: Any):
        self.envs = self._sub_envs(AccompanimentEnv, num_envs, kwargs)
        first = self.envs[0]
        self._make_spaces(first, num_envs)
        self.max_episode_steps = int(max_episode_steps)
        self.dynamics, self.tolerance = first.dynamics, first.tolerance
        self._n_actions = int(first.action_space.n)
        n = num_envs
        self._index = np.arange(n)
        self._frame = np.zeros(n, dtype=np.int64)
        self._next = np.zeros(n, dtype=np.int64)
        self._extra = np.zeros(n, dtype=np.int64)
        self._n_events = np.ones(n, dtype=np.int64)
        self._n_frames = np.zeros(n, dtype=np.int64)
        self._end_column = np.zeros(n, dtype=np.int64)
        self._last_column = np.zeros(n, dtype=np.int64)  # the last score column a window may start at
        self._pixel_length = np.zeros(n, dtype=np.int64)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._events = {name: np.zeros((n, 1)) for name in _EVENT_TABLES}
        self._events["score_column"] = np.zeros((n, 1), dtype=np.int64)
        self._pixels = np.zeros((n, N_BINS, 1), dtype=np.uint8)
        self._roll = np.zeros((n, 2, 88, SCORE_WINDOW), dtype=np.uint8)
        self._score = np.zeros((n, 2, 88, SCORE_WINDOW), dtype=np.uint8)  # each env's score window now
        self._column = np.zeros(n, dtype=np.int64)  # where it was cut
        self._reloaded = np.ones(n, dtype=bool)  # a new episode: cut it whatever its column

    # --- episodes -----------------------------------------------------------------------------------------
    def _grow(self, name: str, length: int) -> None:
        """Widen a per-env table's last axis to ``length`` (at least doubling), keeping what it holds."""
        table = self._events[name] if name in self._events else getattr(self, name)
        if table.shape[-1] >= length:
            return
        grown = np.zeros((*table.shape[:-1], max(length, 2 * table.shape[-1])), dtype=table.dtype)
        grown[..., :table.shape[-1]] = table
        if name in self._events:
            self._events[name] = grown
        else:
            setattr(self, name, grown)
        if name == "_pixels":  # the sub-envs sound their plays into the slots: point them at the new table
            for i, env in enumerate(self.envs):
                if self._pixel_length[i]:
                    env._pixels = self._pixels[i:i + 1, :, :self._pixel_length[i]]

    def _load(self, i: int) -> None:
        """Take sub-env i's freshly reset episode into the batch (and let it sound its plays into slot i)."""
        env = self.envs[i]
        ev = env._events
        e = len(ev)
        tables = {"target_times": ev.target_times, "deadline": ev.target_times + env.tolerance,
                  "score_column": (ev.score_times * FPS + 0.5).astype(np.int64), "target_velocity": ev.target_velocity}
        for name, values in tables.items():
            self._grow(name, e)
            self._events[name][i, :e] = values
        fresh = env._pixels  # the episode's own copy of the soloist's pixels (a grow below re-points env._pixels)
        width = fresh.shape[2]
        self._grow("_pixels", width)
        self._pixels[i, :, :width] = fresh[0]
        self._pixel_length[i] = width
        env._pixels = self._pixels[i:i + 1, :, :width]
        columns = env._roll.shape[2]
        self._grow("_roll", columns)
        self._roll[i, :, :, :columns] = env._roll
        self._n_events[i] = e
        self._n_frames[i] = env._n_frames
        self._end_column[i] = env._end_column
        self._last_column[i] = columns - SCORE_WINDOW
        self._frame[i] = 0
        self._next[i] = 0
        self._extra[i] = 0
        self._elapsed[i] = 0
        self._reloaded[i] = True

    # --- stepping --------------------------------------------------------------------------------------------
    def _check_actions(self, actions) -> np.ndarray:
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            a = None
        if a is None or a.shape != (self.num_envs,) or not np.all(np.isfinite(a)) or np.any(a != np.round(a)) \
                or np.any(a < 0) or np.any(a >= self._n_actions):
            raise InvalidActionError(f"actions must be {self.num_envs} whole numbers in 0..{self._n_actions - 1}, "
                                     f"one per env; got {actions!r}")
        return a.astype(np.int64)

    def _event(self, name: str) -> np.ndarray:
        """Each env's value of an event table at its next event (its last event once all are done)."""
        return self._events[name][self._index, np.minimum(self._next, self._n_events - 1)]

    def step(self, actions):
        a = self._check_actions(actions)
        act = self._reset_finished()
        frame = self._frame
        now = frame / FPS
        play = act & (a != WAIT)
        due = play & (self._next < self._n_events)
        extra = play & ~due
        rewards = np.maximum(-1.0, 1.0 - np.abs(now - self._event("target_times")) / self.tolerance)
        velocity = VELOCITY_LEVELS[np.maximum(a - 1, 0)]
        if self.dynamics:
            match = 0.5 + 0.5 * np.maximum(0.0, 1.0 - np.abs(velocity - self._event("target_velocity")) / 64.0)
            rewards = np.where(rewards > 0, rewards * match, rewards)
        rewards = np.where(due, rewards, np.where(extra, -EXTRA_PENALTY, 0.0))
        for i in np.flatnonzero(due):  # sounding a chord into the mix: per episode, and only when one is played
            env, event = self.envs[i], int(self._next[i])
            env._played_times[event] = now[i]
            env._n_played += 1
            if self.dynamics:
                env._played_velocity[event] = float(velocity[i])
            env._sound(event, float(velocity[i]) if self.dynamics else None, int(frame[i]))
        self._next += due
        self._extra += extra
        self._frame = frame + act
        later = self._frame / FPS
        while True:  # missed events: the soloist has moved on (usually none, at most a few per step)
            missed = act & (self._next < self._n_events) & (later > self._event("deadline"))
            if not missed.any():
                break
            self._next += missed
            rewards = np.where(missed, rewards - MISS_PENALTY, rewards)
        terminated = act & (self._frame >= self._n_frames - 1) & (self._next >= self._n_events)
        self._elapsed += act
        truncated = act & ~terminated & (self._elapsed >= self.max_episode_steps)
        self._needs_reset = terminated | truncated
        self._observe()
        return dict(self._obs), rewards, terminated, truncated, self._ended_info(self._episode_metrics)

    def _window(self, name: str, width: int) -> np.ndarray:
        return self._windows(name, getattr(self, name), width)

    def _observe(self) -> None:
        idx, n = self._index, self.num_envs
        audio = as_pixels(self._window("_pixels", AUDIO_WINDOW)[idx, :, self._frame])
        self._obs["audio"] = audio.reshape(n, 1, N_BINS, AUDIO_WINDOW)
        column = np.where(self._next < self._n_events, self._event("score_column"), self._end_column)
        column = np.minimum(column, self._last_column)
        # the score window moves only when an event is played or missed: re-cut just the envs whose window moved
        moved = np.flatnonzero((column != self._column) | self._reloaded)
        if moved.size:
            self._score[moved] = as_pixels(self._window("_roll", SCORE_WINDOW)[moved, :, :, column[moved]])
            self._column = column
            self._reloaded[:] = False
        self._obs["score"] = self._score.copy()
        self._obs["progress"] = (self._next / self._n_events).astype(np.float32).reshape(n, 1)

    def _episode_metrics(self, i: int) -> dict[str, float]:
        env = self.envs[i]
        env._frame, env._next, env._extra = int(self._frame[i]), int(self._next[i]), int(self._extra[i])
        return env.episode_metrics()
