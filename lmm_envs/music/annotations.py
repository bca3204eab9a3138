"""Alignments given as points in beats: beat-annotation files, and the note-level pairs of match files.

A :class:`BeatAlignment` pairs performance seconds with score positions in beats (quarter notes from the score's
start). It becomes an :class:`~lmm_envs.music.score.Alignment` (score seconds) through the score's tempo map, so
the same annotations serve whichever nominal tempo the score is given.

Beat-annotation files are plain text, one point a line, ``#`` comments and a header line allowed, separated by
whitespace, commas or tabs: ``performance_time`` alone (the performance times of beats 0, 1, 2, ...) or
``performance_time beat`` (the score position of each, in quarter notes from the score's start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmm_envs.errors import AlignmentError
from lmm_envs.music.score import Alignment, TempoMap

BEAT_ANNOTATION_SUFFIXES = {".txt", ".tsv", ".beats"}
TEMPO_WARNING_RATIO = 1.5  # a median tempo ratio beyond this (or below its inverse) is worth a warning


@dataclass(frozen=True)
class BeatAlignment:
    """Matching points: performance seconds (strictly increasing) and score beats (non-decreasing)."""

    performance_time: np.ndarray
    beats: np.ndarray

    def to_alignment(self, tempo: TempoMap) -> Alignment:
        """The alignment in score seconds under ``tempo``."""
        return Alignment(self.performance_time, tempo.beats_to_seconds(self.beats))

    def median_tempo_ratio(self, tempo: TempoMap, span_s: float = 4.0) -> float:
        """The median over the performance of (score seconds passed) / (performance seconds passed), measured over
        spans of about ``span_s`` seconds: 1.0 when the performer keeps the score's nominal tempo, 2.0 at twice it."""
        score_s = tempo.beats_to_seconds(self.beats)
        t = self.performance_time
        grid = np.arange(t[0], t[-1] - span_s / 2, span_s / 2)
        if grid.size == 0:
            return float((score_s[-1] - score_s[0]) / max(t[-1] - t[0], 1e-9))
        ends = np.minimum(grid + span_s, t[-1])
        ratios = (np.interp(ends, t, score_s) - np.interp(grid, t, score_s)) / (ends - grid)
        return float(np.median(ratios))

    def performance_bpm(self) -> float:
        """The performance's own tempo in quarter notes per minute (beats over time, first to last point)."""
        return float(60.0 * (self.beats[-1] - self.beats[0]) / (self.performance_time[-1] - self.performance_time[0]))


def monotonic_points(performance_time, beats, source: str = "alignment") -> BeatAlignment:
    """Sort points by beat and keep the longest run in which performance time strictly increases: notes a
    performer played out of order (or annotation slips) are dropped instead of breaking the map."""
    t = np.asarray(performance_time, dtype=np.float64).reshape(-1)
    b = np.asarray(beats, dtype=np.float64).reshape(-1)
    ok = np.isfinite(t) & np.isfinite(b)
    t, b = t[ok], b[ok]
    order = np.lexsort((t, b))
    t, b = t[order], b[order]
    keep = _longest_increasing(t)
    t, b = t[keep], b[keep]
    if t.size < 2:
        raise AlignmentError(f"{source} has fewer than two usable matching points; check the file")
    return BeatAlignment(t, b)


def _longest_increasing(values: np.ndarray) -> np.ndarray:
    """Indices of a longest strictly increasing subsequence (patience sorting, O(n log n))."""
    tails: list[float] = []
    tail_index: list[int] = []
    parent = np.full(values.size, -1)
    for i, v in enumerate(values):
        k = int(np.searchsorted(tails, v, side="left"))
        if k == len(tails):
            tails.append(v)
            tail_index.append(i)
        else:
            tails[k] = v
            tail_index[k] = i
        parent[i] = tail_index[k - 1] if k > 0 else -1
    out = []
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        out.append(i)
        i = parent[i]
    return np.array(out[::-1], dtype=np.int64)


_SEPARATOR = re.compile(r"[\s,;]+")


def load_beat_annotations(path: str | Path) -> BeatAlignment:
    """Read a beat-annotation file (see the module docstring) into a :class:`BeatAlignment`."""
    p = Path(path)
    if not p.is_file():
        raise AlignmentError(f"beat annotation file not found: {p}; check the path")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise AlignmentError(f"beat annotation file {p} is not UTF-8 text; save it as plain text") from None
    rows: list[list[float]] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f for f in _SEPARATOR.split(text) if f]
        try:
            values = [float(f) for f in fields[:2]]
        except ValueError:
            if not rows and number == _first_content_line(lines):
                continue  # a header line
            raise AlignmentError(f"beat annotation file {p} line {number} is not numbers: {line.strip()!r:.60}") from None
        if rows and len(values) != len(rows[0]):
            raise AlignmentError(f"beat annotation file {p} line {number} has {len(values)} columns, earlier lines "
                                 f"{len(rows[0])}; use one column (beat times) or two (time, beat) throughout")
        rows.append(values)
    if len(rows) < 2:
        raise AlignmentError(f"beat annotation file {p} needs at least two lines of 'performance_time [beat]'")
    arr = np.asarray(rows, dtype=np.float64)
    times = arr[:, 0]
    beats = arr[:, 1] if arr.shape[1] > 1 else np.arange(times.size, dtype=np.float64)
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(beats))):
        raise AlignmentError(f"beat annotation file {p} holds NaN or infinite values; remove those lines")
    if np.any(np.diff(times) <= 0):
        i = int(np.argmax(np.diff(times) <= 0))
        raise AlignmentError(f"beat annotation file {p}: performance times must strictly increase "
                             f"({times[i + 1]:g} after {times[i]:g})")
    if np.any(np.diff(beats) < 0):
        raise AlignmentError(f"beat annotation file {p}: beats must not decrease")
    return BeatAlignment(times, beats)


def _first_content_line(lines: list[str]) -> int:
    for number, line in enumerate(lines, start=1):
        if line.split("#", 1)[0].strip():
            return number
    return 0
