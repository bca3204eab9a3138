"""Property tests: generated scores go through load -> expressive rendering -> synth -> features -> env episodes
without any exception but an LMMError, and every alignment stays monotonic."""

import gymnasium as gym
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmm_envs  # noqa: F401
from lmm_envs.errors import LMMError
from lmm_envs.music.expressive import render_performance
from lmm_envs.music.io import load_score
from lmm_envs.music.score import Performance, Score, TempoMap

notes = st.lists(
    st.tuples(st.integers(21, 108),                                  # pitch
              st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 3.0]),  # onset step (0: a chord)
              st.sampled_from([0.0, 0.125, 0.5, 1.0, 2.0, 6.0]),     # duration (0: zero-length)
              st.integers(1, 127),                                    # velocity
              st.integers(0, 2)),                                     # part
    min_size=1, max_size=24)
tempi = st.lists(st.floats(10.0, 500.0, allow_nan=False), min_size=1, max_size=3)


def make_score(data, bpms) -> Score:
    onsets = np.cumsum([n[1] for n in data])
    beats = np.arange(len(bpms)) * 4.0
    return Score(pitch=[n[0] for n in data], onset=onsets, duration=[n[2] for n in data],
                 velocity=[n[3] for n in data], part=[n[4] for n in data], tempo=TempoMap(beats, bpms),
                 measures=np.arange(0, onsets.max() + 4, 4.0), title="generated")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=notes, bpms=tempi, expressiveness=st.floats(0.0, 2.0), seed=st.integers(0, 2**31 - 1))
def test_generated_scores_flow_through_the_pipeline(tmp_path, data, bpms, expressiveness, seed):
    try:
        score = make_score(data, bpms)
        midi = tmp_path / "generated.mid"
        nominal = Performance(score.pitch, score.onset_seconds, score.offset_seconds, score.velocity, score.part)
        nominal.to_pretty_midi().write(str(midi))
        loaded = load_score(midi)
        performance, alignment = render_performance(loaded, expressiveness, seed=seed)
        assert np.all(np.diff(alignment.performance_time) > 0) and np.all(np.diff(alignment.score_time) >= 0)
        assert np.all(performance.offset > performance.onset) and np.all(performance.onset >= 0)
        for env_id, kwargs in (("lmm/ScoreFollowing-v0", {}), ("lmm/SightReading-v0", {"polyphony": "poly"}),
                               ("lmm/Accompaniment-v0", {})):
            try:
                env = gym.make(env_id, pieces=[loaded], expressiveness=expressiveness, **kwargs)
            except LMMError:
                continue  # e.g. a one-part score offered to Accompaniment
            obs, info = env.reset(seed=seed % 1000)
            for _ in range(60):
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
                assert np.isfinite(reward) and all(env.observation_space[k].contains(v) for k, v in obs.items())
                if terminated or truncated:
                    break
    except LMMError:
        pass  # a clear, one-line refusal is the contract for bad input (e.g. a tempo of 10 or 500 bpm)


@settings(max_examples=25, deadline=None)
@given(data=notes, bpms=tempi)
def test_bad_tempi_are_refused_and_good_ones_accepted(data, bpms):
    if all(20.0 <= b <= 400.0 for b in bpms):
        make_score(data, bpms)
    else:
        try:
            make_score(data, bpms)
        except LMMError as e:
            assert "\n" not in str(e)
        else:
            raise AssertionError("an absurd tempo was accepted")
