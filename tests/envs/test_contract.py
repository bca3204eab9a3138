"""The contract of every registered lmm id, taken from the registry so a new env is covered the day it lands."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.errors import ConfigError, InvalidActionError
from lmm_envs.music.corpus import piece_ids, piece_info

ENV_IDS = sorted(k for k in gym.registry if k.startswith("lmm/"))
# two short chorales (multi-part: Accompaniment) and two short monophonic tunes (mono motion tasks)
PIECES = (sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:2]
          + sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:2])


def make(env_id, **kwargs):
    return gym.make(env_id, pieces=PIECES, **kwargs)


def rollout(env, seed, steps):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    rewards = []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            out.append(obs)
    return out, rewards


def test_there_are_registered_ids():
    assert "lmm/ScoreFollowing-v0" in ENV_IDS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make(env_id).unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env_without_warnings(env_id):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make(env_id).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory_bit_for_bit(env_id):
    a, ra = rollout(make(env_id), seed=3, steps=300)
    b, rb = rollout(make(env_id), seed=3, steps=300)
    assert ra == rb and len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in x:
            assert x[key].tobytes() == y[key].tobytes()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickles_mid_episode(env_id):
    env = make(env_id)
    env.reset(seed=1)
    for _ in range(10):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    action = env.action_space.sample()
    a = env.step(action)
    b = clone.step(action)
    assert a[1] == b[1] and all(np.array_equal(a[0][k], b[0][k]) for k in a[0])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_async_vector_env_runs_and_closes(env_id):
    envs = gym.vector.AsyncVectorEnv([lambda: make(env_id) for _ in range(4)])
    try:
        envs.reset(seed=0)
        for _ in range(20):
            envs.step(envs.action_space.sample())
    finally:
        envs.close()
    assert envs.closed


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_without_seed_observations_to_the_end_and_step_after_it(env_id):
    env = make(env_id)
    obs, _ = env.reset()
    done = False
    while not done:
        assert env.observation_space.contains(obs)  # the last observation of an episode included
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated or truncated
    assert env.observation_space.contains(obs)
    assert "episode_metrics" in info
    with pytest.raises(InvalidActionError, match="reset"):
        env.step(env.action_space.sample())


ACTION_VARIANTS = [(env_id, {}) for env_id in ENV_IDS] + [
    ("lmm/ScoreFollowing-v0", {"action_type": "continuous"}), ("lmm/Accompaniment-v0", {"dynamics": True}),
    ("lmm/SightReading-v0", {"polyphony": "poly"}), ("lmm/PlayByEar-v0", {"velocity": True})]


@pytest.mark.parametrize("env_id,kwargs", ACTION_VARIANTS, ids=str)
def test_actions_outside_the_space_are_refused(env_id, kwargs):
    env = make(env_id, **kwargs)
    env.reset(seed=0)
    space = env.action_space
    if isinstance(space, gym.spaces.Box):
        bad = [np.full(space.shape, np.nan), np.full(space.shape, 2.0), "x"]
    elif isinstance(space, gym.spaces.Discrete):
        bad = [space.n, -1, "x", 1.5, np.nan]
    elif isinstance(space, gym.spaces.MultiDiscrete):
        bad = [space.nvec, np.full(space.shape, -1), np.full(space.shape, np.nan), "x", 1]
    else:  # MultiBinary
        bad = [np.full(space.shape, 2), np.full(space.shape, np.nan), "x", -1]
    for action in bad:
        with pytest.raises(InvalidActionError):
            env.unwrapped.step(action)
    env.step(space.sample())  # the env is still usable


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_and_out_of_range_options(env_id):
    with pytest.raises(ConfigError, match="unknown option"):
        make(env_id, tempo_bonus=3)
    with pytest.raises(ConfigError, match="expressiveness"):
        make(env_id, expressiveness=-1)
    with pytest.raises(ConfigError, match="paired_budget"):
        gym.make(env_id, paired_budget=100_000)
