"""SB3 over the native vector envs: what DummyVecEnv over the single envs gives, for the same seeds."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import lmm_envs  # noqa: F401
from agents.vec_env import BatchedVecEnv, make_training_env
from lmm_envs.envs import ENV_IDS
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids


def _pieces(env_id: str) -> list[str]:
    playing = env_id in ("lmm/SightReading-v0", "lmm/PlayByEar-v0")
    return piece_ids(split="test", collection="ryans" if playing else "bach")[:3]


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_batched_vec_env_steps_as_dummy_vec_env_does(env_id):
    n, limit = 3, 120  # a short time limit, so that episodes both terminate and are truncated
    kwargs = {"pieces": _pieces(env_id)}
    dummy = DummyVecEnv([lambda: gym.make(env_id, max_episode_steps=limit, **kwargs) for _ in range(n)])
    batched = BatchedVecEnv(env_id, n, max_episode_steps=limit, **kwargs)
    for venv in (dummy, batched):
        venv.seed(7)
        venv.action_space.seed(0)
    expected, got = dummy.reset(), batched.reset()
    ends = truncations = 0
    for _ in range(300):
        assert all(np.array_equal(expected[k], got[k]) for k in expected)
        actions = np.array([dummy.action_space.sample() for _ in range(n)])
        expected, r1, d1, i1 = dummy.step(actions)
        got, r2, d2, i2 = batched.step(actions)
        assert r1.dtype == r2.dtype and np.array_equal(r1, r2) and np.array_equal(d1, d2)
        for i in np.flatnonzero(d1):
            ends += 1
            assert all(np.array_equal(i1[i]["terminal_observation"][k], i2[i]["terminal_observation"][k])
                       for k in expected)
            assert i1[i].get("TimeLimit.truncated", False) == i2[i]["TimeLimit.truncated"]
            truncations += i2[i]["TimeLimit.truncated"]
            assert "episode_metrics" in i2[i]
            if "episode_metrics" in i1[i]:
                assert i1[i]["episode_metrics"] == i2[i]["episode_metrics"]
    assert ends > truncations > 0 or env_id != "lmm/ScoreFollowing-v0"
    assert ends > 0


def test_make_training_env_monitors_episodes_and_refuses_bad_counts():
    venv = make_training_env("lmm/ScoreFollowing-v0", 4, seed=0, pieces=_pieces("lmm/ScoreFollowing-v0"),
                             max_episode_steps=30)
    assert isinstance(venv, VecMonitor) and isinstance(venv.venv, BatchedVecEnv) and venv.num_envs == 4
    venv.reset()
    for _ in range(30):
        _, _, dones, infos = venv.step(np.ones(4, dtype=np.int64))
    assert dones.all() and all(info["episode"]["l"] == 30 for info in infos)
    with pytest.raises(ConfigError, match="n_envs"):
        BatchedVecEnv("lmm/ScoreFollowing-v0", 0)


def test_ppo_trains_on_the_batched_env():
    from stable_baselines3 import PPO

    from agents.features import RawExtractor

    venv = make_training_env("lmm/ScoreFollowing-v0", 4, seed=0, pieces=_pieces("lmm/ScoreFollowing-v0"))
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, device="cpu", seed=0,
                policy_kwargs={"features_extractor_class": RawExtractor})
    model.learn(256)
    assert model.num_timesteps == 256
