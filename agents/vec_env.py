"""Stable-Baselines3 training over the native vector envs: N episodes stepped as array code.

:class:`BatchedVecEnv` is an SB3 ``VecEnv`` over any lmm id's ``vector_entry_point``
(``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``). It keeps SB3's semantics, so that
for the same seeds it gives what ``DummyVecEnv`` over the single envs gives: an episode that ends is reset in the
same step (the observation returned is the new episode's), its last observation is in
``infos[i]["terminal_observation"]``, a time-limit end sets ``infos[i]["TimeLimit.truncated"]``, and the env's
``episode_metrics`` are in that info too (so a callback can log them). Wrap it in ``VecMonitor`` for episode
returns and lengths. :func:`make_training_env` picks it (or ``DummyVecEnv`` for ``n_envs=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import lmm_envs  # noqa: F401  (registers ids)
from lmm_envs.envs import MAX_EPISODE_STEPS
from lmm_envs.errors import ConfigError


class BatchedVecEnv(VecEnv):
    """An lmm id's native vector env as an SB3 ``VecEnv`` (see the module docstring)."""

    def __init__(self, env_id: str, n_envs: int, max_episode_steps: int = MAX_EPISODE_STEPS, **env_kwargs: Any):
        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise ConfigError(f"n_envs must be a positive integer, got {n_envs!r}")
        self.env_id = env_id
        self.venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                                 max_episode_steps=max_episode_steps, **env_kwargs)
        self._actions: np.ndarray | None = None
        super().__init__(n_envs, self.venv.single_observation_space, self.venv.single_action_space)

    # --- stepping -------------------------------------------------------------------------------------------
    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] if all(o == self._options[0] for o in self._options) else None
        if options is None:
            raise ConfigError("BatchedVecEnv resets every env with the same options; set one options dict for all")
        obs, _ = self.venv.reset(seed=seeds, options=options or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            ended = info.get("episode_metrics_index", np.flatnonzero(dones))
            metrics = info.get("episode_metrics", {})
            for j, i in enumerate(ended):
                infos[i]["episode_metrics"] = {k: float(v[j]) for k, v in metrics.items()}
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            obs = self.venv.unwrapped.reset_ended()
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    # --- the sub-envs ---------------------------------------------------------------------------------------
    def _sub_envs(self, indices) -> list:
        return [self.venv.unwrapped.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices=None) -> list:
        return [getattr(env, attr_name) for env in self._sub_envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for env in self._sub_envs(indices):
            setattr(env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        return [getattr(env, method_name)(*method_args, **method_kwargs) for env in self._sub_envs(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._sub_envs(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


def make_training_env(env_id: str, n_envs: int, seed: int | None = 0, monitor: bool = True,
                      **env_kwargs: Any) -> VecEnv:
    """The env SB3 trains on: ``n_envs`` episodes of ``env_id`` in a :class:`BatchedVecEnv` (a ``DummyVecEnv``
    over one single env when ``n_envs`` is 1), seeded with ``seed`` (env i gets ``seed + i``), in a
    ``VecMonitor``."""
    if n_envs == 1:
        venv: VecEnv = DummyVecEnv([lambda: gym.make(env_id, **env_kwargs)])
    else:
        venv = BatchedVecEnv(env_id, n_envs, **env_kwargs)
    venv.seed(seed)
    return VecMonitor(venv) if monitor else venv
