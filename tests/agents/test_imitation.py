"""Imitation warm starts: demonstrations from a teacher, behaviour cloning into an SB3 policy, DAgger's budget."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import lmm_envs  # noqa: F401
from agents.features import LMMExtractor, MatchExtractor
from agents.imitation import (
    agreement,
    behaviour_cloning,
    collect,
    discounted_returns,
    single_env_factory,
    warm_start,
)
from agents.pretrain import pretrain
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


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    pretrain(out, size="tiny", lm_steps=10, budgets=(2,), methods=("regression",), pool_limit=3, progress=False,
             probe=False)
    return out


@pytest.mark.parametrize("readout", ["pooled", "match"])
def test_cloning_through_frozen_lms_runs_them_once_a_state_and_fits_as_it_would_without(lm_dir, readout,
                                                                                       monkeypatch):
    """The frozen LMs give a state the same output in every epoch: cloning computes it once per state (what makes
    an ``lmm`` warm start affordable) and fits the policy as running them on every minibatch does."""
    env = gym.make(SF, pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32,
                                            "readout": readout}}
    cached, plain = (PPO("MultiInputPolicy", env, n_steps=64, device="cpu", seed=0, policy_kwargs=kwargs).policy
                     for _ in range(2))
    data = collect([single_env_factory(SF, pieces=PIECES)], 300, seed=0, gamma=0.9)
    calls = []
    original = LMMExtractor.encode_frozen
    monkeypatch.setattr(LMMExtractor, "encode_frozen", lambda self, obs: calls.append(1) or original(self, obs))
    fit_cached = behaviour_cloning(cached, data, epochs=3, learning_rate=1e-3)
    cached_calls, calls[:] = len(calls), []
    fit_plain = behaviour_cloning(plain, data, epochs=3, learning_rate=1e-3, cache_frozen=False)
    assert cached_calls == 2  # 300 states in batches of 256, once; the agreement reuses them
    assert len(calls) == 3 * 2 + 1  # every minibatch of every epoch, and the agreement's forward
    assert fit_cached["nll"] == pytest.approx(fit_plain["nll"], rel=1e-4)
    assert fit_cached["agreement"] == fit_plain["agreement"]
    for (name, a), b in zip(cached.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-4), name


def test_dagger_through_frozen_lms_encodes_each_state_once_across_rounds(lm_dir, monkeypatch):
    """DAgger's data grows round by round; the states of earlier rounds are not run through the LMs again."""
    from agents import imitation

    env = gym.make(SF, pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    policy = PPO("MultiInputPolicy", env, n_steps=64, device="cpu", seed=0, policy_kwargs=kwargs).policy
    encoded = []
    original = imitation.encode
    monkeypatch.setattr(imitation, "encode", lambda policy, data: encoded.append(len(data)) or original(policy, data))
    record = warm_start(policy, "dagger", single_env_factory(SF, pieces=PIECES), 256, n_envs=4, rounds=2, epochs=2)
    assert encoded == [128, 128] and [r["states"] for r in record.rounds] == [128, 256]


class _CutOff(Exception):
    """A session's time limit, arriving after a round."""


def _match_policy(seed: int = 0):
    env = gym.make(SF, pieces=PIECES)
    return PPO("MultiInputPolicy", env, n_steps=64, device="cpu", seed=seed,
               policy_kwargs={"features_extractor_class": MatchExtractor}).policy


def test_a_dagger_cut_off_after_a_round_carries_on_to_the_policy_an_uninterrupted_one_clones(tmp_path, monkeypatch):
    """A long DAgger (hours through the frozen LMs on 2 cores) loses only the round it was in when it is cut off: run
    again with the same folder it collects the missing rounds only, and ends bit for bit where one run would."""
    from agents import imitation

    make = single_env_factory(SF, pieces=PIECES)
    settings = dict(n_envs=4, rounds=3, epochs=2, seed=5)
    whole = _match_policy()
    whole_record = warm_start(whole, "dagger", make, 384, **settings)

    def cut_after_round_one(env_steps):
        if env_steps >= 256:
            raise _CutOff

    cut = _match_policy()
    with pytest.raises(_CutOff):
        warm_start(cut, "dagger", make, 384, keep=tmp_path / "rounds", on_round=cut_after_round_one, **settings)
    assert sorted(p.name for p in (tmp_path / "rounds").iterdir()) == ["policy_1.pt", "record.json", "round_0.npz",
                                                                       "round_1.npz"]
    collected = []
    original = imitation.collect
    monkeypatch.setattr(imitation, "collect", lambda *a, **k: collected.append(a[1]) or original(*a, **k))
    resumed = _match_policy(seed=1)  # other initial weights: the kept ones replace them
    record = warm_start(resumed, "dagger", make, 384, keep=tmp_path / "rounds", **settings)
    assert collected == [128]  # round 2 only
    assert record.env_steps == whole_record.env_steps == 384
    assert [r["states"] for r in record.rounds] == [128, 256, 384]
    assert record.rounds == pytest.approx(whole_record.rounds)
    for (name, a), b in zip(resumed.state_dict().items(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_kept_rounds_of_other_settings_are_not_carried_on(tmp_path):
    make = single_env_factory(SF, pieces=PIECES)
    warm_start(_match_policy(), "dagger", make, 128, n_envs=4, rounds=2, epochs=1, keep=tmp_path)
    with pytest.raises(ConfigError, match="other settings .*steps.*remove the folder"):
        warm_start(_match_policy(), "dagger", make, 256, n_envs=4, rounds=2, epochs=1, keep=tmp_path)
