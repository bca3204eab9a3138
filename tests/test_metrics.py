import numpy as np
import pytest

from lmm_envs.metrics import reported_onset_times, score_following_metrics


def test_reported_times_interpolate_between_frames():
    times = np.array([0.0, 0.05, 0.10, 0.15])
    pointer = np.array([0.0, 0.1, 0.2, 0.2])
    got = reported_onset_times(times, pointer, np.array([0.0, 0.05, 0.2, 0.5]))
    assert got[:3] == pytest.approx([0.0, 0.025, 0.10])
    assert np.isnan(got[3])


def test_perfect_follower_scores_the_maximum():
    truth = np.array([0.0, 0.5, 1.0, 2.0])
    m = score_following_metrics(truth.copy(), truth)
    assert m["tracking_ratio"] == m["tracked_to_end"] == m["within_50ms"] == m["within_2000ms"] == 1.0
    assert m["mean_abs_error_s"] == m["median_abs_error_s"] == 0.0


def test_thresholds_and_loss():
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    reported = np.array([0.04, 1.2, 2.6, np.nan])
    m = score_following_metrics(reported, truth, lost_time=2.5)
    assert m["within_50ms"] == 0.25 and m["within_300ms"] == 0.5 and m["within_1000ms"] == 0.75
    assert m["tracking_ratio"] == 0.5 and m["tracked_to_end"] == 0.0
    assert m["mean_abs_error_s"] == pytest.approx((0.04 + 0.2 + 0.6) / 3)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        score_following_metrics(np.zeros(2), np.zeros(3))


def test_lost_frames_are_runs_of_at_least_patience_frames():
    from lmm_envs.metrics import lost_frames

    errors = np.zeros(100)
    errors[10:15] = 3.0  # a slip of 5 frames: not lost
    errors[40:70] = -2.5  # 30 frames behind: lost
    lost = lost_frames(errors, tolerance_s=2.0, patience=20)
    assert not lost[:40].any() and lost[40:70].all() and not lost[70:].any()
    assert not lost_frames(np.full(10, 1.9), 2.0, 1).any()
