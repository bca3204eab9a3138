"""Imitation warm starts: demonstrations from a teacher, behaviour cloning into an SB3 policy, DAgger's budget."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

import lmm_envs  # noqa: F401
from agents.features import MatchExtractor
from agents.imitation import (
    agreement,
    behaviour_cloning,
    collect,
    discounted_returns,
    single_env_factory,
    warm_start,
)
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids

PIECES = piece_ids(split="test", collection="bach")[:2]
SF = "lmm/ScoreFollowing-v0"


def test_discounted_returns_restart_at_each_episode():
    r = discounted_returns(np.array([1.0, 1.0, 1.0, 1.0]), np.array([True, False, True, False]), 0.5)
    assert r.tolist() == [1.5, 1.0, 1.5, 1.0]


@pytest.mark.parametrize("teacher", ["oracle", "oltw"])
def test_demonstrations_are_the_teachers_actions_on_the_states_visited(teacher):
    data = collect([single_env_factory(SF, pieces=PIECES)] * 2, 64, seed=0, gamma=0.9, teacher=teacher)
    assert len(data) == 64 and set(data.obs) == {"audio", "score", "tempo"}
    assert data.obs["audio"].shape == (64, 1, 75, 40) and set(np.unique(data.actions)) <= {0, 1, 2}
    assert np.all(data.returns >= 0) and data.returns.max() <= 1 / (1 - 0.9) + 1e-9


def test_behaviour_cloning_fits_the_demonstrations():
    env = gym.make(SF, pieces=PIECES)
    model = PPO("MultiInputPolicy", env, n_steps=64, device="cpu", seed=0,
                policy_kwargs={"features_extractor_class": MatchExtractor})
    data = collect([single_env_factory(SF, pieces=PIECES)], 256, seed=0, gamma=0.9)
    before = agreement(model.policy, data)
    first = behaviour_cloning(model.policy, data, epochs=1, learning_rate=1e-3)
    last = behaviour_cloning(model.policy, data, epochs=30, learning_rate=1e-3)
    assert last["nll"] < first["nll"] and last["agreement"] > before + 0.1


def test_dagger_spends_its_budget_and_records_its_rounds():
    env = gym.make(SF, pieces=PIECES)
    model = PPO("MultiInputPolicy", env, n_steps=64, device="cpu", seed=0,
                policy_kwargs={"features_extractor_class": MatchExtractor})
    record = warm_start(model.policy, "dagger", single_env_factory(SF, pieces=PIECES), 256, n_envs=4, rounds=2,
                        epochs=1)
    assert record.env_steps == 256 and [r["states"] for r in record.rounds] == [128, 256]
    assert record.rounds[1]["beta"] == 0.5
    with pytest.raises(ConfigError, match="bc or dagger"):
        warm_start(model.policy, "gail", single_env_factory(SF, pieces=PIECES), 256)
    with pytest.raises(ConfigError, match="unknown agent 'human'"):
        warm_start(model.policy, "bc", single_env_factory(SF, pieces=PIECES), 256, teacher="human")
