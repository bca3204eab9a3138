import gymnasium as gym
import numpy as np
import pytest
import torch

import lmm_envs  # noqa: F401
from agents.features import LMMExtractor, RawExtractor
from agents.pretrain import pretrain
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids, piece_info

ENV_IDS = sorted(k for k in gym.registry if k.startswith("lmm/"))
PIECES = (sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:1]
          + sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:1])


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    pretrain(out, size="tiny", lm_steps=10, budgets=(2,), methods=("regression",), pool_limit=3, progress=False)
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_lmm_extractor_trains_with_ppo_on_every_env(env_id, lm_dir):
    from stable_baselines3 import PPO

    env = gym.make(env_id, pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu",
                seed=0)
    frozen = {k: v.clone() for k, v in model.policy.features_extractor.lm_a.state_dict().items()}
    model.learn(64)
    after = model.policy.features_extractor.lm_a.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # the LMs stay frozen


def test_saved_agent_reloads_and_gives_the_same_actions(lm_dir, tmp_path):
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu")
    model.learn(32)
    model.save(tmp_path / "agent.zip")
    again = PPO.load(tmp_path / "agent.zip", device="cpu")
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        a, _ = model.predict(obs, deterministic=True)
        b, _ = again.predict(obs, deterministic=True)
        assert np.array_equal(a, b)
        obs, *_ = env.step(a)


def test_raw_extractor_handles_every_observation_space():
    for env_id in ENV_IDS:
        env = gym.make(env_id, pieces=PIECES)
        extractor = RawExtractor(env.observation_space, features_dim=16)
        obs, _ = env.reset(seed=0)
        batch = {k: torch.as_tensor(np.asarray(v)[None]).float() / (255.0 if v.dtype == np.uint8 else 1.0)
                 for k, v in obs.items()}
        assert extractor(batch).shape == (1, 16)


def test_missing_pretrained_folder_says_how_to_make_it(tmp_path):
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match="agents.pretrain"):
        LMMExtractor(env.observation_space, lm_dir=str(tmp_path / "none"))
