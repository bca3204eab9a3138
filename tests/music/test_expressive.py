import numpy as np
import pytest

from lmm_envs.errors import ConfigError
from lmm_envs.music.expressive import render_performance
from lmm_envs.pieces import corpus_score


@pytest.fixture(scope="module")
def chorale():
    return corpus_score("bach/bwv66.6")


def test_same_seed_same_performance_bit_for_bit(chorale):
    a, align_a = render_performance(chorale, 1.0, seed=7)
    b, align_b = render_performance(chorale, 1.0, seed=7)
    c, _ = render_performance(chorale, 1.0, seed=8)
    assert a.onset.tobytes() == b.onset.tobytes() and a.velocity.tobytes() == b.velocity.tobytes()
    assert align_a.performance_time.tobytes() == align_b.performance_time.tobytes()
    assert not np.array_equal(a.onset, c.onset)


def test_deadpan_is_metronomic(chorale):
    perf, align = render_performance(chorale, 0.0, seed=3)
    assert np.allclose(perf.onset, chorale.onset_seconds)
    assert np.allclose(align.performance_time, align.score_time)
    assert np.array_equal(perf.velocity, chorale.velocity)


@pytest.mark.parametrize("e", [0.5, 1.0, 2.0, 4.0])
def test_alignment_is_monotonic_and_matches_the_notes(chorale, e):
    perf, align = render_performance(chorale, e, seed=1)
    assert np.all(np.diff(align.performance_time) > 0) and np.all(np.diff(align.score_time) >= 0)
    # onsets deviate from the alignment only by the voice asynchrony (bounded by 40 ms * e)
    assert np.max(np.abs(perf.onset - align.performance_at(chorale.onset_seconds))) <= 0.04 * e + 1e-6


def test_expressiveness_sets_difficulty(chorale):
    def deviation(e):
        devs = []
        for seed in range(5):
            _, align = render_performance(chorale, e, seed=seed)
            tempo = np.diff(align.score_time) / np.diff(align.performance_time)
            devs.append(np.std(np.log(tempo)))
        return np.mean(devs)

    assert deviation(0.0) == 0.0
    assert deviation(0.5) < deviation(1.0) < deviation(2.0)


def test_fermatas_are_held(chorale):
    _, align = render_performance(chorale, 1.0, seed=0)
    fermata = chorale.tempo.beats_to_seconds(chorale.fermatas[0])
    slope = lambda s: np.interp(s, align.score_time[1:], np.diff(align.score_time) / np.diff(align.performance_time))  # noqa: E731
    assert slope(fermata + 0.2) < 0.8 * np.median(np.diff(align.score_time) / np.diff(align.performance_time))


def test_negative_expressiveness_is_refused(chorale):
    with pytest.raises(ConfigError, match="expressiveness"):
        render_performance(chorale, -0.1)
