import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.benchmark.evaluate import run_episode
from lmm_envs.music.corpus import piece_ids

TEST_SUBSET = piece_ids(split="test")[::8]  # 20 pieces spread over the test split


def mean_metric(agent, pieces, key, **kwargs):
    env = gym.make("lmm/ScoreFollowing-v0", pieces=pieces, **kwargs)
    values = [run_episode(env, agent, seed=i, options={"piece": p, "variant": 0})["metrics"][key]
              for i, p in enumerate(pieces)]
    return float(np.mean(values))


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_oracle_scores_the_maximum(action_type):
    pieces = TEST_SUBSET[:4]
    for key in ("within_50ms", "tracking_ratio", "tracked_to_end"):
        assert mean_metric("oracle", pieces, key, action_type=action_type) == 1.0


def test_oltw_tracks_85_percent_within_300ms_and_random_is_far_below():
    oltw = mean_metric("oltw", TEST_SUBSET, "within_300ms")
    random = mean_metric("random", TEST_SUBSET, "within_300ms")
    assert oltw >= 0.85
    assert random < 0.4 < oltw


def test_oltw_does_not_read_the_truth():
    """Blank out the ground truth in info: the follower must do just as well."""
    from agents.baselines.oltw import OLTWAgent

    class Blind(OLTWAgent):
        def act(self, obs, info):
            return super().act(obs, {k: v for k, v in info.items() if k not in ("score_time", "error")})

    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:3])
    blind = [run_episode(env, Blind(env), seed=0, options={"piece": i, "variant": 0})["metrics"] for i in range(3)]
    seeing = [run_episode(env, "oltw", seed=0, options={"piece": i, "variant": 0})["metrics"] for i in range(3)]
    assert blind == seeing


def test_reward_grows_as_the_pointer_nears_the_truth():
    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:1], expressiveness=0.0)
    env.reset(seed=0)
    _, near, *_ = env.step(1)  # deadpan + tempo 1: exactly on the truth
    for _ in range(5):
        _, far, *_ = env.step(2)
    assert near == pytest.approx(1.0) and far < near


def test_lost_ends_the_episode_unless_disabled():
    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:1])
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, info = env.step(0)  # slow down to a halt
        steps, done = steps + 1, terminated or truncated
    assert info["lost"] and info["episode_metrics"]["tracked_to_end"] == 0.0
    assert steps < env.unwrapped.piece.n_frames - 1
    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:1], terminate_on_lost=False)
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, info = env.step(0)
        steps, done = steps + 1, terminated or truncated
    assert steps == env.unwrapped.piece.n_frames - 1
    metrics = info["episode_metrics"]
    assert metrics["tracked_to_end"] == 0.0 and 0.3 < metrics["lost_share"] < 1.0


def test_an_episode_that_ended_on_loss_counts_the_rest_as_lost():
    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:1])
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(0)
        done = terminated or truncated
    running_on = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:1], terminate_on_lost=False)
    running_on.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, later = running_on.step(0)
        done = terminated or truncated
    assert info["episode_metrics"]["lost_share"] >= later["episode_metrics"]["lost_share"] > 0.3


def test_lost_is_measured_in_performance_seconds():
    """The same score-time slip is a loss for a slow performer only after the same real time as for a fast one."""
    from lmm_envs.music.score import Alignment
    from lmm_envs.pieces import prepare_piece

    piece = prepare_piece(TEST_SUBSET[0], expressiveness=0.0)
    env = gym.make("lmm/ScoreFollowing-v0", pieces=[piece], terminate_on_lost=False).unwrapped
    env.reset(seed=0)
    n = piece.n_frames
    env._frame = n - 1
    times = piece.frame_times
    # a pointer 1.5 s of performance time behind, all the way: below the 2 s tolerance, never lost
    env._trajectory = piece.alignment.score_at(np.maximum(times - 1.5, 0.0))
    assert env.episode_metrics()["lost_share"] == 0.0
    env._trajectory = piece.alignment.score_at(np.maximum(times - 3.0, 0.0))  # 3 s behind: lost
    assert env.episode_metrics()["lost_share"] > 0.5
    assert isinstance(piece.alignment, Alignment)


def test_reset_options_choose_piece_and_rendering():
    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:3])
    _, info = env.reset(seed=0, options={"piece": TEST_SUBSET[2], "variant": 1})
    assert info["piece_id"] == TEST_SUBSET[2]
    with pytest.raises(lmm_envs.LMMError, match="unknown reset option"):
        env.reset(options={"tempo": 2})


def test_rgb_array_frames_and_record_video(tmp_path):
    pytest.importorskip("moviepy")
    from gymnasium.wrappers import RecordVideo

    env = gym.make("lmm/ScoreFollowing-v0", pieces=TEST_SUBSET[:1], render_mode="rgb_array")
    env = RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda e: True, disable_logger=True)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    for _ in range(30):
        env.step(1)
    env.close()
    assert list((tmp_path / "videos").glob("*.mp4"))


def test_ppo_learns_to_beat_random_on_one_piece():
    """8k steps of PPO on one deadpan piece: the trained (stochastic) policy outscores the random agent.

    At this budget the policy is still close to uniform, so its argmax is not yet a good policy; sampling from it
    is what PPO optimises and what is compared here.
    """
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gym.make("lmm/ScoreFollowing-v0", pieces=["bach/bwv66.6"], performances_per_piece=2, expressiveness=0.0)
    model = PPO("MultiInputPolicy", env, n_steps=512, batch_size=128, n_epochs=4, gamma=0.98, seed=0,
                device="cpu", verbose=0, policy_kwargs=dict(net_arch=[64, 64]))
    model.learn(8192)

    def mean_return(policy):
        return np.mean([run_episode(env, policy, seed=100 + s)["return"] for s in range(4)])

    trained = mean_return(lambda obs: model.predict(obs, deterministic=False)[0])
    assert trained > 1.15 * mean_return("random")
