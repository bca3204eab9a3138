import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.audio.keyboard import PITCH_LOW
from lmm_envs.benchmark.evaluate import run_episode
from lmm_envs.envs.sight_reading import _strikes, performance_keys
from lmm_envs.errors import ConfigError, InvalidActionError
from lmm_envs.music.corpus import piece_ids, piece_info
from lmm_envs.music.score import Performance

MONO = sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:2]
POLY = sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:1]
IDS = ["lmm/SightReading-v0", "lmm/PlayByEar-v0"]


class SemitoneOff:
    """Plays the target one key higher (a player with the right rhythm and the wrong hand position)."""

    def __init__(self, env):
        self.env = env.unwrapped

    def reset(self, obs, info):
        pass

    def act(self, obs, info):
        keys = np.roll(self.env._target.keys[self.env._frame], 1)
        keys[: self.env.key_low] = False
        keys[self.env.key_low + self.env.n_keys:] = False
        return self.env.action_for_keys(keys)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("options", [dict(polyphony="mono", pieces=MONO),
                                     dict(polyphony="poly", pieces=POLY, velocity=True)])
def test_oracle_plays_the_target_exactly_with_the_best_reward(env_id, options):
    env = gym.make(env_id, **options)
    result = run_episode(env, "oracle", seed=0)
    m = result["metrics"]
    assert m["note_f1"] == 1.0 and m["frame_f1"] == 1.0 and m["spectral_distance"] == 0.0
    assert result["return"] == pytest.approx(result["steps"])  # reward 1 on every frame, the maximum


@pytest.mark.parametrize("env_id", IDS)
def test_audio_reward_ranks_oracle_above_random_and_a_semitone_off_player(env_id):
    env = gym.make(env_id, pieces=MONO)
    returns = {name: run_episode(env, agent, seed=3, options={"piece": 0, "variant": 0})["return"]
               for name, agent in [("oracle", "oracle"), ("random", "random"), ("off", SemitoneOff(env))]}
    assert returns["oracle"] > returns["off"] and returns["oracle"] > returns["random"]
    assert returns["off"] < 0.8 * returns["oracle"]


def test_symbolic_reward_is_key_overlap():
    env = gym.make("lmm/SightReading-v0", pieces=MONO, reward="symbolic")
    oracle = run_episode(env, "oracle", seed=0, options={"piece": 0, "variant": 0})
    off = run_episode(env, SemitoneOff(env), seed=0, options={"piece": 0, "variant": 0})
    assert oracle["return"] == oracle["steps"]
    # (a semitone step in the tune can line up a shifted note with the next one: near nothing, not always 0)
    assert off["metrics"]["note_f1"] < 0.05 and off["return"] < 0.5 * oracle["return"]


def test_observations_show_the_target_ahead_and_the_agent_hears_itself():
    env = gym.make("lmm/SightReading-v0", pieces=MONO)
    obs, info = env.reset(seed=0)
    assert obs["audio"].max() == 0 and obs["held"].sum() == 0
    u = env.unwrapped
    for _ in range(40):
        obs, *_ = env.step(u.oracle_action())
    target_now = u._target.keys[u._frame]
    assert np.array_equal(obs["score"][0, :, 20] > 0, target_now)  # column 20 is what the next action plays
    assert obs["audio"].max() > 0  # it heard its own playing
    ear = gym.make("lmm/PlayByEar-v0", pieces=MONO)
    obs, _ = ear.reset(seed=0)
    assert "score" not in obs and obs["target"].shape == (1, 75, 80) and obs["target"].max() > 0


def test_action_spaces_follow_polyphony_and_velocity_and_are_the_same_for_every_split():
    lo, hi = 55, 88  # the monophonic corpus's range
    env = gym.make("lmm/SightReading-v0", pieces=MONO[:1])
    assert env.action_space == gym.spaces.Discrete(hi - lo + 2)
    for split in ("train", "test"):
        assert gym.make("lmm/PlayByEar-v0", split=split).action_space == env.action_space
        assert gym.make("lmm/SightReading-v0", split=split, polyphony="poly").action_space == \
            gym.spaces.MultiBinary(93 - 36 + 1)
    narrow = gym.make("lmm/SightReading-v0", pieces=MONO[:1], key_range=(piece_info(MONO[0]).lowest, 88))
    assert narrow.action_space.n == 88 - piece_info(MONO[0]).lowest + 2
    with pytest.raises(ConfigError, match="key_range"):
        gym.make("lmm/SightReading-v0", pieces=MONO[:1], key_range=(70, 72))
    assert isinstance(gym.make("lmm/SightReading-v0", pieces=POLY, polyphony="poly").action_space,
                      gym.spaces.MultiBinary)
    assert gym.make("lmm/PlayByEar-v0", pieces=MONO[:1], velocity=True).action_space.nvec.tolist() == [hi - lo + 2, 5]


def test_striking_at_the_wrong_velocity_costs_reward():
    env = gym.make("lmm/SightReading-v0", pieces=MONO[:1], velocity=True)

    def first_strike_reward(change_level: bool) -> float:
        env.reset(seed=0, options={"piece": 0, "variant": 0})
        u = env.unwrapped
        while np.asarray(u.oracle_action())[0] == 0:
            env.step(u.oracle_action())
        action = np.asarray(u.oracle_action()).copy()
        if change_level:
            action[1] = 4 if action[1] < 2 else 0
        return env.step(action)[1]

    assert first_strike_reward(True) < first_strike_reward(False) == 1.0


def test_mono_needs_monophonic_pieces_and_bad_options_are_refused():
    with pytest.raises(ConfigError, match="no piece suits"):
        gym.make("lmm/SightReading-v0", pieces=POLY, polyphony="mono")
    with pytest.raises(ConfigError, match="polyphony"):
        gym.make("lmm/SightReading-v0", pieces=MONO, polyphony="chords")
    with pytest.raises(ConfigError, match="reward"):
        gym.make("lmm/PlayByEar-v0", pieces=MONO, reward="likes")
    env = gym.make("lmm/PlayByEar-v0", pieces=POLY, polyphony="poly", velocity=True)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step(np.full(env.action_space.shape, 6))


def test_repeated_keys_get_a_frame_up_and_mono_keeps_one_key():
    assert _strikes(np.array([0, 5, 6]), np.array([6, 7, 9]), np.ones(3)) == [(0, 4, 1.0), (5, 9, 1.0)]
    perf = Performance(np.array([60, 64, 67, 60]), np.array([0.0, 0.0, 0.5, 0.5]), np.array([1.0, 1.0, 1.0, 1.0]),
                       np.full(4, 64.0), np.zeros(4, dtype=int))
    keys, _ = performance_keys(perf, mono=True, velocity=False)
    assert keys.sum(axis=1).max() == 1
    assert keys[0, 64 - PITCH_LOW] and keys[10, 67 - PITCH_LOW]  # the highest of each chord


def test_ppo_on_a_mono_piece_beats_random(ppo_vs_random):
    trained, random = ppo_vs_random(gym.make("lmm/SightReading-v0", pieces=MONO[:1], expressiveness=0.0))
    assert trained > random


def test_a_playing_target_is_built_once_and_then_read_from_the_disk_cache(monkeypatch, tmp_path):
    from lmm_envs.audio.keyboard import Keyboard
    from lmm_envs.envs import sight_reading
    from lmm_envs.prepare import prepare_pieces

    monkeypatch.setenv("LMM_ENVS_CACHE", str(tmp_path / "cache"))
    pid = next(p for p in piece_ids(split="test") if piece_info(p).monophonic)
    prepare_pieces([pid], variants=1, playing_targets=True, progress=False)
    env = gym.make("lmm/SightReading-v0", pieces=[pid], performances_per_piece=1)
    first = run_episode(env, "oracle", seed=0)
    monkeypatch.setattr(sight_reading, "_TARGETS", type(sight_reading._TARGETS)())  # a fresh process's memory

    def no_rendering(*args, **kwargs):
        raise AssertionError("the prepared target was rendered again")

    monkeypatch.setattr(Keyboard, "render_keys", no_rendering)
    again = run_episode(env, "oracle", seed=0)
    assert again["metrics"] == first["metrics"] and again["return"] == first["return"]
    assert first["metrics"]["note_f1"] == 1.0
