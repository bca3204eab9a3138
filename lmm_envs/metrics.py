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


def lost_frames(time_errors: np.ndarray, tolerance_s: float, patience: int) -> np.ndarray:
    """Which frames a follower is lost at: inside a run of at least ``patience`` consecutive frames whose time
    error (performance seconds, any sign) exceeds ``tolerance_s``. A shorter slip is not a loss."""
    off = np.abs(np.asarray(time_errors, dtype=np.float64)) > tolerance_s
    lost = np.zeros(off.shape, dtype=bool)
    if not off.any():
        return lost
    edges = np.diff(np.concatenate([[0], off.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for a, b in zip(starts, ends, strict=True):
        if b - a >= patience:
            lost[a:b] = True
    return lost


def score_following_metrics(
    reported_times: np.ndarray,
    true_times: np.ndarray,
    lost_time: float | None = None,
    thresholds_ms: tuple[int, ...] = SCORE_FOLLOWING_THRESHOLDS_MS,
    lost_share: float | None = None,
) -> dict[str, float]:
    """Score-following metrics over the score onsets of one piece.

    - ``tracking_ratio``: share of onsets reported before the follower was lost (all reported onsets if never lost),
    - ``tracked_to_end``: 1.0 if the follower was never lost,
    - ``lost_share``: the share of the performance's time the follower was lost (when given, see :func:`lost_frames`),
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
        **({"lost_share": float(lost_share)} if lost_share is not None else {}),
        "mean_abs_error_s": float(err[have].mean()) if have.any() else float("nan"),
        "median_abs_error_s": float(np.median(err[have])) if have.any() else float("nan"),
    }
    limits = np.asarray(thresholds_ms, dtype=np.float64) / 1000.0 + 1e-9
    within = np.count_nonzero(have[:, None] & (err[:, None] <= limits), axis=0) / truth.size
    out.update({f"within_{ms}ms": float(w) for ms, w in zip(thresholds_ms, within, strict=True)})
    return out


# --- playing: key states against a target (SightReading, PlayByEar) ------------------------------------------
ONSET_TOLERANCE_S = 0.05


def key_notes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The notes of a key-state sequence ``(n_frames, n_keys)``: (key, onset frame, offset frame) of each press."""
    keys = np.asarray(keys, dtype=bool)
    n = keys.shape[0]
    padded = np.zeros((keys.shape[1], n + 2), dtype=np.int8)  # key-major: flat indices come sorted by key, frame
    padded[:, 1:-1] = keys.T
    change = np.diff(padded, axis=1)
    on_k, on_f = np.divmod(np.flatnonzero(change == 1), n + 1)
    return on_k, on_f, np.flatnonzero(change == -1) % (n + 1)


def note_onset_metrics(played: np.ndarray, target: np.ndarray, fps: float,
                       tolerance_s: float = ONSET_TOLERANCE_S) -> dict[str, float]:
    """Note-level onset precision, recall and F1 (as in transcription evaluation, ``mir_eval``, onsets only).

    ``played`` and ``target`` are key-state sequences ``(n_frames, n_keys)``; a played note matches a target note
    of the same key whose onset is within ``tolerance_s`` (one-to-one matching).
    """
    import mir_eval

    def intervals(keys):
        k, on, off = key_notes(keys)
        return np.stack([on / fps, off / fps], axis=1).astype(np.float64), 440.0 * 2.0 ** ((k - 69.0) / 12.0)

    ref_i, ref_p = intervals(target)
    est_i, est_p = intervals(played)
    if ref_p.size == 0 or est_p.size == 0:
        empty = float(ref_p.size == 0 and est_p.size == 0)
        return {"note_precision": empty, "note_recall": empty, "note_f1": empty}
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_i, ref_p, est_i, est_p, onset_tolerance=tolerance_s, offset_ratio=None)
    return {"note_precision": float(p), "note_recall": float(r), "note_f1": float(f)}


def frame_metrics(played: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Frame-level precision, recall and F1 over (frame, key) cells that are down."""
    played = np.asarray(played, dtype=bool)
    target = np.asarray(target, dtype=bool)
    hits = float(np.sum(played & target))
    n_played, n_target = float(played.sum()), float(target.sum())
    precision = hits / n_played if n_played else float(n_target == 0)
    recall = hits / n_target if n_target else float(n_played == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"frame_precision": precision, "frame_recall": recall, "frame_f1": f1}


def spectral_distance(played: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame distance in [0, 1] between two log spectrograms ``(bins, frames)`` (or one frame, ``(bins,)``).

    ``sum |a - b| / (sum a + sum b)``: 0 for identical frames (two silent frames included), 1 when they share no
    energy in any band.
    """
    a = np.asarray(played, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    num = np.abs(a - b).sum(axis=0)
    den = a.sum(axis=0) + b.sum(axis=0)
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)


def playing_metrics(played: np.ndarray, target: np.ndarray, played_spec: np.ndarray, target_spec: np.ndarray,
                    fps: float) -> dict[str, float]:
    """Metrics of a played passage: note onset P/R/F1 (50 ms), frame P/R/F1 and the mean spectral distance."""
    out = note_onset_metrics(played, target, fps)
    out.update(frame_metrics(played, target))
    out["spectral_distance"] = float(np.mean(spectral_distance(played_spec, target_spec)))
    return out


# --- accompanying: played accompaniment events against the soloist's timing ----------------------------------
ACCOMPANIMENT_THRESHOLDS_MS = (50, 100)


def accompaniment_metrics(played_times: np.ndarray, target_times: np.ndarray, score_times: np.ndarray,
                          extra: int, thresholds_ms: tuple[int, ...] = ACCOMPANIMENT_THRESHOLDS_MS
                          ) -> dict[str, float]:
    """Metrics of an accompaniment over its events.

    ``played_times``: when each accompaniment event was played (s; NaN if missed); ``target_times``: when the
    soloist's timing puts it; ``score_times``: the events' nominal score times; ``extra``: plays with no event
    left to play. Returns the mean absolute asynchrony (ms, over played events), the share of all events within each
    threshold (missed events fail), missed (count and share), extra, and the tempo correlation: the Pearson
    correlation between the accompaniment's and the soloist's local tempi (score time per performance time
    between consecutive played events; NaN when fewer than three or when either tempo is constant).
    """
    played = np.asarray(played_times, dtype=np.float64)
    target = np.asarray(target_times, dtype=np.float64)
    score = np.asarray(score_times, dtype=np.float64)
    if not (played.shape == target.shape == score.shape) or target.size == 0:
        raise ValueError("played_times, target_times and score_times must have the same non-zero length")
    have = np.isfinite(played)
    err = np.abs(played - target)
    out = {"mean_abs_asynchrony_ms": float(1000 * err[have].mean()) if have.any() else float("nan")}
    for ms in thresholds_ms:
        out[f"within_{ms}ms"] = float(np.mean(have & (err <= ms / 1000.0 + 1e-9)))
    out["missed"] = float(np.sum(~have))
    out["missed_share"] = float(np.mean(~have))
    out["extra"] = float(extra)
    idx = np.flatnonzero(have)
    out["tempo_correlation"] = float("nan")
    if idx.size >= 4:
        d_score = np.diff(score[idx])
        ok = d_score > 0
        d_played, d_target = np.diff(played[idx])[ok], np.diff(target[idx])[ok]
        good = (d_played > 0) & (d_target > 0)
        if good.sum() >= 3:
            a = d_score[ok][good] / d_played[good]
            b = d_score[ok][good] / d_target[good]
            if np.std(a) > 1e-9 and np.std(b) > 1e-9:
                out["tempo_correlation"] = float(np.corrcoef(a, b)[0, 1])
    return out
