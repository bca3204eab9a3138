"""The random agent and the oracle (the two ends of the normalised score), and ScoreFollowing's constant
"keep the tempo" policy (what a learner that has learned nothing about the music tends to)."""

from __future__ import annotations

import copy

import numpy as np

from lmm_envs.audio.features import FPS


class RandomAgent:
    """Samples uniformly from the action space; each episode's stream is seeded from ``seed`` and the seed the
    episode was reset with, so an evaluation gives the same actions however its episodes are ordered."""

    def __init__(self, env, seed: int = 0):
        self.env = env
        self.seed = seed
        self.space = copy.deepcopy(env.action_space)
        self.space.seed(seed)

    def reset(self, obs, info) -> None:
        episode_seed = getattr(self.env.unwrapped, "np_random_seed", None)
        if episode_seed is not None and episode_seed >= 0:
            self.space.seed(self.seed * 1_000_003 + int(episode_seed))

    def act(self, obs, info):
        return self.space.sample()


class OracleAgent:
    """The upper bound: acts from the ground truth.

    On envs that know their best action (``env.unwrapped.oracle_action()``: Accompaniment, SightReading,
    PlayByEar) it takes it. On ScoreFollowing it reads the true score position from ``info``, extrapolates the
    next one from the last two and picks the action whose tempo ratio lands the pointer closest to it.
    """

    def __init__(self, env):
        self.env = env
        self.action_space = env.action_space
        self._oracle = getattr(env.unwrapped, "oracle_action", None)

    def reset(self, obs, info) -> None:
        self.previous = info.get("score_time")

    def act(self, obs, info):
        if self._oracle is not None:
            return self._oracle()
        truth = info["score_time"]
        target = truth + (truth - self.previous)
        self.previous = truth
        wanted = (target - info["pointer"]) * FPS  # the tempo ratio that lands on the target
        return ratio_action(self.action_space, info["tempo_ratio"], wanted)


def ratio_action(space, current: float, wanted: float):
    """The action of a ScoreFollowing action space that brings the tempo ratio closest to ``wanted``."""
    from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP, ratio_to_action

    if hasattr(space, "n"):
        options = np.clip(current + (np.arange(3) - 1) * TEMPO_STEP, 0.0, MAX_RATIO)
        return int(np.argmin(np.abs(options - wanted)))
    return np.array([ratio_to_action(float(wanted))], dtype=np.float32)


class KeepTempoAgent:
    """ScoreFollowing's constant policy: never change the tempo (the pointer moves at the score's nominal tempo).
    A follower must beat it to show that it listens."""

    def __init__(self, env):
        from lmm_envs.envs.score_following import ScoreFollowingEnv
        from lmm_envs.errors import ConfigError

        if not isinstance(env.unwrapped, ScoreFollowingEnv):
            raise ConfigError("keep_tempo is a lmm/ScoreFollowing-v0 baseline")
        self.action = 1 if hasattr(env.action_space, "n") else np.zeros(1, dtype=np.float32)

    def reset(self, obs, info) -> None:
        pass

    def act(self, obs, info):
        return self.action
