import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.audio.wav import read_audio, write_audio
from lmm_envs.benchmark.evaluate import run_episode
from lmm_envs.envs.accompaniment import PLAY, WAIT, solo_part_index
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids, piece_info

CHORALES = sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:3]
TUNE = piece_ids(split="test", collection="ryans")[:1]


def test_oracle_asynchrony_is_within_half_a_frame():
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES)
    for seed in range(2):
        m = run_episode(env, "oracle", seed=seed)["metrics"]
        assert m["mean_abs_asynchrony_ms"] <= 25.0 + 1e-6  # events are played at the frame nearest their time
        assert m["within_50ms"] == 1.0 and m["missed"] == 0 and m["extra"] == 0
    deadpan = gym.make("lmm/Accompaniment-v0", pieces=CHORALES, expressiveness=0.0)
    assert run_episode(deadpan, "oracle", seed=0)["metrics"]["mean_abs_asynchrony_ms"] <= 25.0 + 1e-6


def test_rewards_follow_the_asynchrony_misses_and_extras():
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1], expressiveness=0.0)
    _, info = env.reset(seed=0)
    assert info["event_time"] == pytest.approx(info["event_score_time"])  # deadpan: the score's own timing
    u = env.unwrapped
    while u.oracle_action() == WAIT:
        env.step(WAIT)
    assert env.step(PLAY)[1] == pytest.approx(1.0)  # on time
    total = 0.0
    for _ in range(60):  # wait through the next events: they are missed
        total += env.step(WAIT)[1]
    assert total <= -1.0 and u.episode_metrics()["missed"] >= 1
    obs, info = env.reset(seed=0)
    reward = env.step(PLAY)[1]  # the first event is at 0: fine; the second, played at once, is early
    early = env.step(PLAY)[1]
    assert reward == pytest.approx(1.0) and early < 1.0


def test_what_the_agent_plays_is_heard_in_the_mix():
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1])
    quiet, _ = env.reset(seed=0)
    silent = [env.step(WAIT)[0]["audio"] for _ in range(5)]
    env.reset(seed=0)
    played = [env.step(PLAY if i == 0 else WAIT)[0]["audio"] for i in range(5)]
    assert played[-1].astype(int).sum() > silent[-1].astype(int).sum()


def test_score_channels_are_solo_and_accompaniment_at_the_next_event():
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1])
    obs, info = env.reset(seed=0)
    score = env.unwrapped.piece.score
    solo = info["solo_part"]
    assert solo == solo_part_index(score, "top")
    top = score.pitch[score.part == solo]
    assert obs["score"].shape == (2, 88, 80)
    rows = np.flatnonzero(obs["score"][0].max(axis=1))
    assert rows.max() + 21 <= top.max() and rows.min() + 21 >= top.min()
    assert obs["score"][1, :, 20].max() == 255  # the event to play sits at column 20


def test_follower_beats_metronome_on_expressive_and_ties_it_on_deadpan():
    def metrics(agent, expressiveness):
        env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES, expressiveness=expressiveness)
        rows = [run_episode(env, agent, seed=0, options={"piece": i, "variant": 0})["metrics"]
                for i in range(len(CHORALES))]
        return (np.mean([m["mean_abs_asynchrony_ms"] for m in rows]), np.mean([m["within_100ms"] for m in rows]))

    assert metrics("follower_accompanist", 1.0)[0] < 0.5 * metrics("metronome", 1.0)[0]
    metronome, follower = metrics("metronome", 0.0), metrics("follower_accompanist", 0.0)
    assert metronome[0] < 26.0  # on deadpan the nominal tempo is the soloist's
    # listening costs nothing when the soloist keeps the nominal tempo: within half a frame of the metronome
    assert follower[0] <= metronome[0] + 25.0 and follower[1] >= metronome[1] - 0.02


def test_episode_audio_holds_soloist_and_accompaniment(tmp_path):
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1])
    result = run_episode(env, "oracle", seed=0)
    u = env.unwrapped
    perf = u.episode_performance()
    assert (perf.part == 1).sum() == sum(len(n) for n in u._events.notes)  # every accompaniment note was played
    audio = u.episode_audio()
    assert audio.ndim == 1 and np.abs(audio).max() > 0.01
    path = tmp_path / "episode.wav"
    write_audio(path, audio, u.synth.sample_rate)
    assert read_audio(path, u.synth.sample_rate).shape[0] == audio.shape[0]
    assert result["steps"] >= len(audio) / u.synth.sample_rate * 20 - 2


def test_dynamics_adds_velocity_choices_and_rewards_matching_them():
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1], dynamics=True, expressiveness=0.0)
    assert env.action_space == gym.spaces.Discrete(6)
    m = run_episode(env, "oracle", seed=0)["metrics"]
    assert m["mean_abs_velocity_error"] <= 10.0
    env.reset(seed=0)
    best = env.unwrapped.oracle_action()
    worst = 1 if best >= 3 else 5
    good = env.step(best)[1]
    env.reset(seed=0)
    assert env.step(worst)[1] < good


def test_pieces_need_two_parts_and_options_are_checked():
    with pytest.raises(ConfigError, match="no piece suits"):
        gym.make("lmm/Accompaniment-v0", pieces=TUNE)
    with pytest.raises(ConfigError, match="tolerance"):
        gym.make("lmm/Accompaniment-v0", pieces=CHORALES, tolerance=0)
    with pytest.raises(ConfigError, match="no piece suits"):
        gym.make("lmm/Accompaniment-v0", pieces=CHORALES, solo_part=7)
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1], solo_part="bottom")
    _, info = env.reset(seed=0)
    score = env.unwrapped.piece.score
    assert info["solo_part"] == int(np.argmin([score.pitch[score.part == p].mean() for p in range(score.n_parts)]))


def test_ppo_on_one_piece_beats_random(ppo_vs_random):
    trained, random = ppo_vs_random(gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1], expressiveness=0.0))
    assert trained > random


def test_a_prepared_rendering_gives_the_soloist_part_without_rendering_it_again(monkeypatch, fresh_process,
                                                                              tmp_path):
    from lmm_envs.audio.synth import make_synth
    from lmm_envs.prepare import prepare_pieces

    fresh_process(tmp_path / "cache")  # nothing from earlier tests in memory
    prepare_pieces(CHORALES[:1], variants=1, playing_targets=True, progress=False)
    fresh_process(tmp_path / "cache")  # the prepared cache, read by a new process

    def no_rendering(*args, **kwargs):
        raise AssertionError("a reset rendered audio that data prepare had prepared")

    monkeypatch.setattr(type(make_synth("harmonic")), "render", no_rendering)
    env = gym.make("lmm/Accompaniment-v0", pieces=CHORALES[:1], performances_per_piece=1)
    assert run_episode(env, "oracle", seed=0)["metrics"]["missed"] == 0.0
