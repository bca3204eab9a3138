import numpy as np
import pytest

from lmm_envs.errors import ConfigError
from lmm_envs.music.expressive import DEFAULT_STYLE, EXPRESSIVE_STYLES, render_performance
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
    # onsets deviate from the alignment only by the voice asynchrony (bounded by 40 ms * e times the style's gain)
    gain = EXPRESSIVE_STYLES[DEFAULT_STYLE].asynchrony
    assert np.max(np.abs(perf.onset - align.performance_at(chorale.onset_seconds))) <= 0.04 * e * gain + 1e-6


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


# Medians over the 88 Vienna 4x22 performances (python -m lmm_envs.music.expressive_stats): what "vienna" matches.
VIENNA_MEDIANS = {"tempo_spread": 0.254, "tempo_change": 0.266, "asynchrony_ms": 27.6, "velocity_spread": 14.9}


def test_vienna_style_matches_the_real_performances_and_gentle_is_about_half():
    from lmm_envs.music import corpus
    from lmm_envs.music.expressive_stats import STATISTICS, expressive_statistics

    ids = corpus.piece_ids(split="test")[::12]
    stats = {}
    for style in ("vienna", "gentle"):
        rows = []
        for i, pid in enumerate(ids):
            score = corpus_score(pid)
            perf, align = render_performance(score, 1.0, seed=i, style=style)
            rows.append(expressive_statistics(score, perf, align))
        stats[style] = {k: float(np.nanmedian([r[k] for r in rows])) for k in STATISTICS}
    for k, real in VIENNA_MEDIANS.items():
        assert stats["vienna"][k] == pytest.approx(real, rel=0.2), k
        assert stats["gentle"][k] < 0.7 * real, k


def test_piano_chords_in_one_part_get_asynchrony_in_the_vienna_style_only():
    from lmm_envs.music.score import Note, Score

    chords = Score.from_notes([Note(p, float(b), 1.0) for b in range(16) for p in (60, 64, 67)])
    vienna, _ = render_performance(chords, 1.0, seed=0, style="vienna")
    gentle, _ = render_performance(chords, 1.0, seed=0, style="gentle")
    spread = lambda perf: np.ptp(perf.onset.reshape(16, 3), axis=1).mean()  # noqa: E731
    assert spread(vienna) > 0.01 and spread(gentle) == 0.0


def test_unknown_style_is_refused_with_the_names():
    from lmm_envs.music.score import Note, Score

    with pytest.raises(ConfigError, match="vienna, gentle"):
        render_performance(Score.from_notes([Note(60, 0.0, 1.0)]), 1.0, style="loud")
