"""The closed-loop reward through the LMs: the agent's own sound, mapped with the K pairs, against LM^V's score."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import lmm_envs
from lmm_envs.music.corpus import piece_ids, piece_info

LMS = Path(__file__).resolve().parents[2] / "leaderboard" / "lms" / "base"  # the LMs and maps in the repository


@pytest.fixture(scope="module")
def agreement():
    from agents.lm.reward import MappedAgreement

    return MappedAgreement(LMS, "contrastive", 8)


@pytest.fixture(scope="module")
def short_mono():
    mono = [p for p in piece_ids(split="test") if piece_info(p).monophonic]
    return sorted(mono, key=lambda p: piece_info(p).seconds)[:1]


def _mean_reward(env, policy: str, steps: int = 120) -> float:
    env.reset(seed=0)
    rewards = []
    for _ in range(steps):
        action = env.unwrapped.oracle_action()
        if policy == "transposed":  # the same rhythm, three keys up: music, but not this music
            action = min(action + 3, env.action_space.n - 1) if action > 0 else 0
        elif policy == "silent":
            action = 0
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(info["mapped_reward"]) and "env_reward" in info
        rewards.append(reward)
        if terminated or truncated:
            break
    return float(np.mean(rewards))


def test_the_mapped_reward_pays_playing_this_score_not_other_music(agreement, short_mono):
    from agents.lm.reward import MappedScoreRewardWrapper

    env = MappedScoreRewardWrapper(gym.make("lmm/SightReading-v0", pieces=short_mono), agreement)
    means = {who: _mean_reward(env, who) for who in ("oracle", "transposed", "silent")}
    assert means["oracle"] > means["transposed"] + 0.2, means
    assert means["oracle"] > means["silent"] + 0.4, means
    assert all(-1.0 <= m <= 1.0 for m in means.values())


@pytest.fixture(scope="module")
def contrast():
    from agents.lm.reward import MappedAgreement

    return MappedAgreement(LMS, "contrastive", 8, contrast="infonce")


@pytest.fixture(scope="module")
def margin():
    from agents.lm.reward import MappedAgreement

    return MappedAgreement(LMS, "contrastive", 8, contrast="margin")


@pytest.mark.parametrize("reward", ["lm-margin", "lm-contrast"])
def test_the_contrasted_rewards_pay_this_moment_not_a_late_or_transposed_one(short_mono, reward):
    from agents.lm.reward_check import check_reward, judged_env

    env = judged_env(reward, short_mono, str(LMS), "contrastive", 8, None)
    assert env.agreement.contrast == {"lm-margin": "margin", "lm-contrast": "infonce"}[reward]
    report = check_reward(env, 1, players=("oracle", "late", "transposed", "random"))
    means = {who: row["mean"] for who, row in report.items()}
    # above 0 (a sound that fits every reading alike) for the score itself; a player whom a moved or transposed
    # reading fits better earns less than half of it (the plain cosine pays the late player three quarters)
    assert means["oracle"] > 0.1, means
    assert means["late"] < means["oracle"] / 2, means
    assert max(means["transposed"], means["random"]) < means["oracle"] / 4, means


def test_the_margin_is_the_cosine_less_the_distractors_mean(monkeypatch, margin, contrast):
    from agents.lm.reward import MappedAgreement, distractor_readings

    infonce = contrast
    cosines = np.array([[0.9, 0.1], [0.5, 0.1], [0.1, 0.1], [0.3, 0.1], [0.1, 0.1], [0.2, 0.1], [0.0, 0.1],
                        [-0.2, 0.1], [0.1, 0.1]])  # (1 + 8 readings, 2 sounds)
    for judge in (margin, infonce):
        monkeypatch.setattr(judge, "_cosines", lambda frames, readings: cosines[:len(readings)])
    audio, score = np.zeros((2, 1, 75, 40), np.uint8), np.zeros((2, 1, 88, 80), np.uint8)
    np.testing.assert_allclose(margin.judge(audio, score), [0.9 - 0.1375, 0.0], atol=1e-12)
    logits = cosines[:, 0] / 0.1
    np.testing.assert_allclose(infonce.judge(audio, score)[0], logits[0] - np.log(np.exp(logits).sum()) + np.log(9))
    np.testing.assert_allclose(infonce.judge(audio, score)[1], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="contrast"):
        MappedAgreement(LMS, "contrastive", 8, contrast="hinge")
    assert distractor_readings(np.zeros((1, 80, 88))).shape[0] == len(cosines)


def test_a_sound_that_fits_every_reading_alike_earns_nothing(contrast, margin):
    """A silent score reads the same moved or transposed: no reading is more this moment than another."""
    audio = np.random.default_rng(1).integers(0, 255, size=(4, 1, 75, 40)).astype(np.uint8)
    score = np.zeros((4, 1, 88, 80), dtype=np.uint8)
    np.testing.assert_allclose(contrast.judge(audio, score), 0.0, atol=1e-9)
    np.testing.assert_allclose(margin.judge(audio, score), 0.0, atol=1e-9)


@pytest.mark.parametrize("reward", ["lm-score", "lm-contrast"])
def test_the_batched_reward_is_the_single_envs_reward(agreement, contrast, small_score, reward):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.lm.reward import MappedScoreRewardVecEnv, MappedScoreRewardWrapper
    from agents.vec_env import make_training_env

    agreement = contrast if reward == "lm-contrast" else agreement
    batched = MappedScoreRewardVecEnv(
        make_training_env("lmm/SightReading-v0", 2, seed=3, monitor=False, pieces=[small_score]), agreement)
    single = DummyVecEnv([lambda: MappedScoreRewardWrapper(gym.make("lmm/SightReading-v0", pieces=[small_score]),
                                                           agreement)] * 2)
    single.seed(3)
    batched.reset(), single.reset()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(260):  # past the small score's end (248 steps): the last step is judged on its terminal observation
        actions = rng.integers(0, batched.action_space.n, size=2)
        _, r_batched, d_batched, i_batched = batched.step(actions)
        _, r_single, d_single, _ = single.step(actions)
        np.testing.assert_array_equal(d_batched, d_single)
        np.testing.assert_allclose(r_batched, r_single, atol=1e-5)
        assert all("mapped_reward" in info for info in i_batched)
        ends += int(d_batched.sum())
    assert ends >= 1


def test_a_missing_mapping_or_an_env_without_a_score_is_refused(tmp_path, agreement, short_mono):
    from agents.lm.reward import MappedAgreement, MappedScoreRewardWrapper

    with pytest.raises(lmm_envs.LMMError, match=r"mapping_contrastive_K64\.pt not found.*agents\.pretrain"):
        MappedAgreement(tmp_path, "contrastive", 64)
    with pytest.raises(ValueError, match="SightReading"):
        MappedScoreRewardWrapper(gym.make("lmm/ScoreFollowing-v0", pieces=short_mono), agreement)


def test_training_with_the_mapped_reward_records_its_judge(tmp_path):
    from agents.train import train

    with pytest.raises(lmm_envs.LMMError, match="agents.pretrain"):
        train("lmm/SightReading-v0", "ppo", "raw", paired_budget=8, steps=8, out=tmp_path / "a", progress=False,
              reward="lm-score", lm_dir=str(tmp_path), mapping="contrastive")
    with pytest.raises(lmm_envs.LMMError, match="SightReading"):
        train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=8, steps=8, out=tmp_path / "b", progress=False,
              reward="lm-score", lm_dir=str(LMS), mapping="contrastive", n_envs=2)
    train("lmm/SightReading-v0", "ppo", "raw", paired_budget=8, steps=64, out=tmp_path / "c", progress=False,
          reward="lm-score", lm_dir=str(LMS), mapping="contrastive", n_envs=2, device="cpu")
    run = json.loads((tmp_path / "c" / "run.json").read_text())
    assert (run["reward"], run["lm_dir"], run["mapping"], run["track"]) == ("lm-score", str(LMS), "contrastive",
                                                                            "8/100k")


def test_the_reward_check_ranks_the_scripted_players(short_mono):
    from agents.lm.reward_check import check_reward, judged_env

    env = judged_env("lm-score", short_mono, str(LMS), "contrastive", 8, None)
    report = check_reward(env, 1, players=("oracle", "transposed", "silent"))
    assert report["oracle"]["mean"] > report["transposed"]["mean"] + 0.2, report
    assert report["oracle"]["mean"] > report["silent"]["mean"] + 0.4, report
    assert report["oracle"]["low"] <= report["oracle"]["mean"] <= report["oracle"]["high"]
    assert report["oracle"]["steps"] == report["silent"]["steps"] > 100  # the whole episode, for each player


def test_the_reward_check_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    from agents.lm.reward_check import main

    assert main(["--pieces", "0"]) == 2
    assert main(["--lm-dir", str(tmp_path), "--pieces", "1", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: --pieces") and "agents.pretrain" in err[1]
    assert not (tmp_path / "r.json").exists()


def test_a_label_free_reward_trains_on_the_unpaired_scores_and_the_pairs_fit_only_its_map(tmp_path, monkeypatch):
    from agents import imitation, vec_env
    from agents.train import train

    trained_on, cloned_on = {}, {}
    make_training_env, single_env_factory = vec_env.make_training_env, imitation.single_env_factory
    monkeypatch.setattr(vec_env, "make_training_env",
                        lambda env_id, n, seed, **kw: trained_on.update(kw) or make_training_env(env_id, n, seed, **kw))
    monkeypatch.setattr(imitation, "single_env_factory",
                        lambda env_id, **kw: cloned_on.update(kw) or single_env_factory(env_id, **kw))
    out = tmp_path / "unpaired"
    train("lmm/SightReading-v0", "ppo", "raw", paired_budget=8, steps=128, out=out, progress=False, reward="lm-score",
          lm_dir=str(LMS), mapping="contrastive", n_envs=2, device="cpu", warm_start="bc", warm_start_steps=64,
          train_pieces="all")
    assert trained_on["split"] == "train" and "paired_budget" not in trained_on  # RL on every score of the split
    assert cloned_on["paired_budget"] == 8  # the oracle's demonstrations stay on the pairs
    run = json.loads((out / "run.json").read_text())
    assert (run["train_pieces"], run["track"], run["env_kwargs"]) == ("all", "8/100k", {"split": "train"})
    assert len(piece_ids(split="train")) > 8
    with pytest.raises(lmm_envs.LMMError, match="label-free"):  # the env's reward compares with the performance
        train("lmm/SightReading-v0", "ppo", "raw", paired_budget=8, steps=64, out=tmp_path / "env", progress=False,
              train_pieces="all")
    assert not (tmp_path / "env").exists()
