"""Task metrics: pure functions of (prediction, ground truth), so any training loop or evaluator can use them."""

from __future__ import annotations

import numpy as np

SCORE_FOLLOWING_THRESHOLDS_MS = (50, 100, 300, 500, 1000, 2000)


def reported_onset_times(times: np.ndarray, pointer: np.ndarray, onset_score_times: np.ndarray) -> np.ndarray:
    """When a follower's (non-decreasing) score pointer first reached each score onset; NaN if it never did.

    ``times`` and ``pointer`` are the follower's trajectory (performance seconds, score seconds); between samples
    the pointer is interpolated linearly.
    """
    times = np.asarray(times, dtype=np.float64)
    pointer = np.maximum.accumulate(np.asarray(pointer, dtype=np.float64))
    onsets = np.asarray(onset_score_times, dtype=np.float64)
    k = np.searchsorted(pointer, onsets - 1e-9, side="left")
    out = np.full(onsets.shape, np.nan)
    reached = k < pointer.size
    first = reached & (k == 0)
    out[first] = times[0]
    mid = reached & (k > 0)
    km = k[mid]
    p0, p1 = pointer[km - 1], pointer[km]
    frac = np.where(p1 > p0, (onsets[mid] - p0) / np.where(p1 > p0, p1 - p0, 1.0), 1.0)
    out[mid] = times[km - 1] + np.clip(frac, 0.0, 1.0) * (times[km] - times[km - 1])
    return out


def score_following_metrics(
    reported_times: np.ndarray,
    true_times: np.ndarray,
    lost_time: float | None = None,
    thresholds_ms: tuple[int, ...] = SCORE_FOLLOWING_THRESHOLDS_MS,
) -> dict[str, float]:
    """Score-following metrics over the score onsets of one piece.

    - ``tracking_ratio``: share of onsets reported before the follower was lost (all reported onsets if never lost),
    - ``tracked_to_end``: 1.0 if the follower was never lost,
    - ``mean_abs_error_s`` / ``median_abs_error_s``: over the reported onsets (NaN if none),
    - ``within_<x>ms``: share of all onsets reported within x ms of their true time (unreported onsets fail).
    """
    reported = np.asarray(reported_times, dtype=np.float64)
    truth = np.asarray(true_times, dtype=np.float64)
    if reported.shape != truth.shape or truth.size == 0:
        raise ValueError("reported_times and true_times must have the same non-zero length")
    have = np.isfinite(reported)
    before_loss = have & (reported < lost_time) if lost_time is not None else have
    err = np.abs(reported - truth)
    out = {
        "tracking_ratio": float(before_loss.mean()),
        "tracked_to_end": float(lost_time is None),
        "mean_abs_error_s": float(err[have].mean()) if have.any() else float("nan"),
        "median_abs_error_s": float(np.median(err[have])) if have.any() else float("nan"),
    }
    for ms in thresholds_ms:
        out[f"within_{ms}ms"] = float(np.mean(have & (err <= ms / 1000.0 + 1e-9)))
    return out
