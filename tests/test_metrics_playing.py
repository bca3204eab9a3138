import numpy as np

from lmm_envs.metrics import (
    accompaniment_metrics,
    frame_metrics,
    key_notes,
    note_onset_metrics,
    spectral_distance,
)


def _keys(notes, n_frames=40, n_keys=10):
    keys = np.zeros((n_frames, n_keys), dtype=bool)
    for k, a, b in notes:
        keys[a:b, k] = True
    return keys


def test_key_notes_finds_each_press_including_repeats():
    notes = [(2, 0, 4), (2, 5, 7), (3, 1, 2), (0, 35, 40), (9, 0, 40)]  # the last two held to the end
    k, on, off = key_notes(_keys(notes))
    assert list(zip(k.tolist(), on.tolist(), off.tolist(), strict=True)) == sorted(notes)  # by key, then onset
    assert [a.size for a in key_notes(np.zeros((0, 88), dtype=bool))] == [0, 0, 0]


def test_note_onsets_within_50ms_match_and_further_ones_do_not():
    target = _keys([(1, 0, 5), (2, 10, 15), (3, 20, 25)])
    one_frame_late = _keys([(1, 1, 5), (2, 11, 15), (3, 21, 25)])  # 50 ms at 20 frames/s: still a match
    two_frames_late = _keys([(1, 2, 5), (2, 12, 15), (3, 22, 25)])
    assert note_onset_metrics(target, target, 20)["note_f1"] == 1.0
    assert note_onset_metrics(one_frame_late, target, 20)["note_f1"] == 1.0
    assert note_onset_metrics(two_frames_late, target, 20)["note_f1"] == 0.0
    half = note_onset_metrics(_keys([(1, 0, 5), (5, 10, 15)]), target, 20)
    assert half["note_precision"] == 0.5 and abs(half["note_recall"] - 1 / 3) < 1e-9


def test_frame_metrics_and_empty_cases():
    target = _keys([(1, 0, 10)])
    m = frame_metrics(_keys([(1, 5, 15)]), target)
    assert m["frame_precision"] == 0.5 and m["frame_recall"] == 0.5
    empty = np.zeros_like(target)
    assert frame_metrics(empty, empty)["frame_f1"] == 1.0
    assert note_onset_metrics(empty, target, 20)["note_f1"] == 0.0


def test_spectral_distance_is_zero_for_equal_and_one_for_disjoint_frames():
    a = np.zeros((5, 3))
    a[1] = 1.0
    b = np.zeros((5, 3))
    b[3] = 1.0
    np.testing.assert_allclose(spectral_distance(a, a), 0.0)
    np.testing.assert_allclose(spectral_distance(a, b), 1.0)
    np.testing.assert_allclose(spectral_distance(np.zeros(5), np.zeros(5)), 0.0)


def test_accompaniment_metrics_count_asynchrony_missed_and_extra():
    target = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    played = np.array([0.02, 1.08, np.nan, 3.3, 4.0])
    m = accompaniment_metrics(played, target, target, extra=2)
    assert abs(m["mean_abs_asynchrony_ms"] - 1000 * (0.02 + 0.08 + 0.3 + 0.0) / 4) < 1e-6
    assert m["within_50ms"] == 0.4 and m["within_100ms"] == 0.6
    assert m["missed"] == 1 and m["missed_share"] == 0.2 and m["extra"] == 2


def test_tempo_correlation_follows_the_soloist():
    score = np.arange(8.0)
    soloist = np.cumsum(np.r_[0, [1.0, 1.2, 0.9, 1.4, 0.8, 1.1, 1.3]])
    m = accompaniment_metrics(soloist + 0.01, soloist, score, extra=0)
    assert m["tempo_correlation"] > 0.99
    steady = accompaniment_metrics(score * 1.1, soloist, score, extra=0)
    assert np.isnan(steady["tempo_correlation"])  # a constant tempo correlates with nothing
