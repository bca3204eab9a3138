"""Symbolic music: notes, scores with a tempo map, performances and alignments.

A :class:`Score` keeps onsets and durations in beats (quarter notes) with a tempo map that turns beats into
nominal seconds. A :class:`Performance` keeps notes in seconds with velocities. An :class:`Alignment` is a
monotonic map between performance time and nominal score time (both in seconds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lmm_envs.errors import AlignmentError, ScoreLoadError

MIN_BPM, MAX_BPM = 20.0, 400.0
MIN_NOTE_BEATS = 1.0 / 32.0  # zero-length notes (grace notes, bad files) get this duration


@dataclass(frozen=True)
class Note:
    """One note of a score: pitch (MIDI number), onset and duration in beats, velocity and part index."""

    pitch: int
    onset: float
    duration: float
    velocity: int = 80
    part: int = 0


@dataclass(frozen=True)
class TempoMap:
    """Piecewise-constant tempo: segment ``i`` starts at ``beats[i]`` and runs at ``bpm[i]``."""

    beats: np.ndarray
    bpm: np.ndarray

    def __post_init__(self) -> None:
        beats = np.asarray(self.beats, dtype=np.float64).reshape(-1)
        bpm = np.asarray(self.bpm, dtype=np.float64).reshape(-1)
        if beats.size == 0 or beats.size != bpm.size:
            raise ScoreLoadError("tempo map needs one bpm per segment start; give at least one tempo")
        if not np.all(np.isfinite(bpm)) or np.any(bpm < MIN_BPM) or np.any(bpm > MAX_BPM):
            bad = bpm[~((bpm >= MIN_BPM) & (bpm <= MAX_BPM))]
            raise ScoreLoadError(
                f"tempo {float(bad[0]):g} bpm is outside {MIN_BPM:g}..{MAX_BPM:g} bpm; fix the file's tempo marks"
            )
        if beats[0] != 0.0 or np.any(np.diff(beats) < 0):
            raise ScoreLoadError("tempo map segments must start at beat 0 and be in order")
        object.__setattr__(self, "beats", beats)
        object.__setattr__(self, "bpm", bpm)
        seconds_per_beat = 60.0 / bpm
        starts = np.concatenate([[0.0], np.cumsum(np.diff(beats) * seconds_per_beat[:-1])])
        object.__setattr__(self, "_starts", starts)

    @classmethod
    def constant(cls, bpm: float) -> TempoMap:
        return cls(np.array([0.0]), np.array([float(bpm)]))

    def beats_to_seconds(self, beats: np.ndarray | float) -> np.ndarray:
        b = np.asarray(beats, dtype=np.float64)
        seg = np.clip(np.searchsorted(self.beats, b, side="right") - 1, 0, None)
        return self._starts[seg] + (b - self.beats[seg]) * 60.0 / self.bpm[seg]

    def seconds_to_beats(self, seconds: np.ndarray | float) -> np.ndarray:
        s = np.asarray(seconds, dtype=np.float64)
        seg = np.clip(np.searchsorted(self._starts, s, side="right") - 1, 0, None)
        return self.beats[seg] + (s - self._starts[seg]) * self.bpm[seg] / 60.0


def _digest(*arrays: np.ndarray, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Score:
    """A score: notes in beats (column arrays, sorted by onset then pitch), a tempo map and metadata.

    ``fermatas`` holds the onsets (beats) of notes marked with a fermata, ``measures`` the beat of each
    barline; both steer expressive rendering (phrase ends).
    """

    pitch: np.ndarray
    onset: np.ndarray
    duration: np.ndarray
    velocity: np.ndarray
    part: np.ndarray
    tempo: TempoMap = field(default_factory=lambda: TempoMap.constant(100.0))
    part_names: tuple[str, ...] = ("part0",)
    fermatas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    measures: np.ndarray = field(default_factory=lambda: np.zeros(0))
    title: str = ""

    def __post_init__(self) -> None:
        pitch = np.asarray(self.pitch, dtype=np.int16).reshape(-1)
        onset = np.asarray(self.onset, dtype=np.float64).reshape(-1)
        duration = np.asarray(self.duration, dtype=np.float64).reshape(-1)
        velocity = np.asarray(self.velocity, dtype=np.int16).reshape(-1)
        part = np.asarray(self.part, dtype=np.int16).reshape(-1)
        n = pitch.size
        if n == 0:
            raise ScoreLoadError(f"score {self.title!r} has no notes (only rests?); give a score with at least one note")
        if not (onset.size == duration.size == velocity.size == part.size == n):
            raise ScoreLoadError("score columns pitch/onset/duration/velocity/part differ in length")
        if not (np.all(np.isfinite(onset)) and np.all(np.isfinite(duration))):
            raise ScoreLoadError("score has a non-finite onset or duration")
        if np.any(pitch < 0) or np.any(pitch > 127):
            raise ScoreLoadError("score has a pitch outside MIDI 0..127")
        if np.any(onset < 0):
            raise ScoreLoadError("score has a negative onset")
        duration = np.maximum(duration, MIN_NOTE_BEATS)
        velocity = np.clip(velocity, 1, 127).astype(np.int16)
        order = np.lexsort((pitch, onset))
        for name, arr in (("pitch", pitch), ("onset", onset), ("duration", duration),
                          ("velocity", velocity), ("part", part)):
            arr = arr[order]
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        n_parts = int(part.max()) + 1
        names = tuple(self.part_names) + tuple(f"part{i}" for i in range(len(self.part_names), n_parts))
        object.__setattr__(self, "part_names", names)
        object.__setattr__(self, "fermatas", np.asarray(self.fermatas, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "measures", np.asarray(self.measures, dtype=np.float64).reshape(-1))

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_notes(cls, notes: Iterable[Note], **kwargs) -> Score:
        notes = list(notes)
        return cls(
            pitch=np.array([n.pitch for n in notes], dtype=np.int16),
            onset=np.array([n.onset for n in notes], dtype=np.float64),
            duration=np.array([n.duration for n in notes], dtype=np.float64),
            velocity=np.array([n.velocity for n in notes], dtype=np.int16),
            part=np.array([n.part for n in notes], dtype=np.int16),
            **kwargs,
        )

    # --- views --------------------------------------------------------------------------------------------
    @property
    def n_notes(self) -> int:
        return int(self.pitch.size)

    @property
    def n_parts(self) -> int:
        return len(self.part_names)

    @property
    def is_monophonic(self) -> bool:
        """One part and never two notes starting together (the corpus manifest's ``monophonic``)."""
        return self.n_parts == 1 and np.unique(self.onset).size == self.n_notes

    @property
    def end_beat(self) -> float:
        return float(np.max(self.onset + self.duration))

    @property
    def onset_seconds(self) -> np.ndarray:
        """Nominal onset times in seconds, from the tempo map."""
        return self.tempo.beats_to_seconds(self.onset)

    @property
    def offset_seconds(self) -> np.ndarray:
        return self.tempo.beats_to_seconds(self.onset + self.duration)

    @property
    def end_seconds(self) -> float:
        return float(self.tempo.beats_to_seconds(self.end_beat))

    def unique_onsets(self) -> np.ndarray:
        """Distinct onset times (beats): the events a follower must pass, in order."""
        return np.unique(self.onset)

    def unique_onset_seconds(self) -> np.ndarray:
        """Distinct onset times in nominal seconds (read-only; computed once, as the digest is)."""
        seconds = self.__dict__.get("_unique_onset_seconds")
        if seconds is None:
            seconds = self.tempo.beats_to_seconds(self.unique_onsets())
            seconds.setflags(write=False)
            self.__dict__["_unique_onset_seconds"] = seconds
        return seconds

    def notes(self) -> list[Note]:
        return [
            Note(int(p), float(o), float(d), int(v), int(q))
            for p, o, d, v, q in zip(self.pitch, self.onset, self.duration, self.velocity, self.part, strict=True)
        ]

    def select_parts(self, parts: Sequence[int]) -> Score:
        """A score with only the given parts (renumbered from 0, in the order given)."""
        parts = list(parts)
        mask = np.isin(self.part, parts)
        remap = np.full(max(self.n_parts, 1), -1, dtype=np.int16)
        for new, old in enumerate(parts):
            remap[old] = new
        return Score(
            pitch=self.pitch[mask], onset=self.onset[mask], duration=self.duration[mask],
            velocity=self.velocity[mask], part=remap[self.part[mask]], tempo=self.tempo,
            part_names=tuple(self.part_names[p] for p in parts), fermatas=self.fermatas,
            measures=self.measures, title=self.title,
        )

    def content_hash(self) -> str:
        """A digest of everything that determines what is played (used in cache keys; computed once)."""
        digest = self.__dict__.get("_content_hash")
        if digest is None:  # the columns are read-only, so the digest never goes stale
            digest = _digest(self.pitch, self.onset, self.duration, self.velocity, self.part, self.tempo.beats,
                             self.tempo.bpm, self.fermatas, self.measures)
            self.__dict__["_content_hash"] = digest
        return digest


@dataclass(frozen=True)
class Performance:
    """Notes as played: onset and offset in seconds, velocity 1..127, part index."""

    pitch: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    velocity: np.ndarray
    part: np.ndarray

    def __post_init__(self) -> None:
        pitch = np.asarray(self.pitch, dtype=np.int16).reshape(-1)
        onset = np.asarray(self.onset, dtype=np.float64).reshape(-1)
        offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        velocity = np.clip(np.asarray(self.velocity, dtype=np.float64).reshape(-1).round(), 1, 127).astype(np.int16)
        part = np.asarray(self.part, dtype=np.int16).reshape(-1)
        if pitch.size == 0:
            raise ScoreLoadError("performance has no notes; give a performance with at least one note")
        if not (np.all(np.isfinite(onset)) and np.all(np.isfinite(offset))):
            raise ScoreLoadError("performance has a non-finite note time")
        onset = np.maximum(onset, 0.0)
        offset = np.maximum(offset, onset + 1e-3)
        order = np.lexsort((pitch, onset))
        for name, arr in (("pitch", pitch), ("onset", onset), ("offset", offset),
                          ("velocity", velocity), ("part", part)):
            arr = arr[order]
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def n_notes(self) -> int:
        return int(self.pitch.size)

    @property
    def end(self) -> float:
        return float(self.offset.max())

    def select_parts(self, parts: Sequence[int]) -> Performance:
        mask = np.isin(self.part, list(parts))
        return Performance(self.pitch[mask], self.onset[mask], self.offset[mask], self.velocity[mask], self.part[mask])

    def content_hash(self) -> str:
        return _digest(self.pitch, self.onset, self.offset, self.velocity, self.part)

    def to_pretty_midi(self, program: int = 0):
        """A ``pretty_midi.PrettyMIDI`` with one instrument per part."""
        import pretty_midi

        pm = pretty_midi.PrettyMIDI()
        for p in np.unique(self.part):
            inst = pretty_midi.Instrument(program=program, name=f"part{int(p)}")
            mask = self.part == p
            for pitch, on, off, vel in zip(self.pitch[mask], self.onset[mask], self.offset[mask],
                                           self.velocity[mask], strict=True):
                inst.notes.append(pretty_midi.Note(int(vel), int(pitch), float(on), float(off)))
            pm.instruments.append(inst)
        return pm


@dataclass(frozen=True)
class Alignment:
    """A monotonic map between performance time and nominal score time (both seconds).

    Matching points are interpolated linearly; outside them the map holds its end points (clamped).
    ``performance_time`` must strictly increase and ``score_time`` must not decrease.
    """

    performance_time: np.ndarray
    score_time: np.ndarray

    def __post_init__(self) -> None:
        p = np.asarray(self.performance_time, dtype=np.float64).reshape(-1)
        s = np.asarray(self.score_time, dtype=np.float64).reshape(-1)
        if p.size < 2 or p.size != s.size:
            raise AlignmentError("alignment needs at least two matching points (performance_time, score_time)")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(s))):
            raise AlignmentError("alignment holds NaN or infinite times; remove those rows")
        if np.any(np.diff(p) <= 0):
            i = int(np.argmax(np.diff(p) <= 0))
            raise AlignmentError(f"alignment performance_time must strictly increase (row {i + 2}: {p[i + 1]:g} after {p[i]:g})")
        if np.any(np.diff(s) < 0):
            i = int(np.argmax(np.diff(s) < 0))
            raise AlignmentError(f"alignment score_time must not decrease (row {i + 2}: {s[i + 1]:g} after {s[i]:g})")
        p.setflags(write=False)
        s.setflags(write=False)
        object.__setattr__(self, "performance_time", p)
        object.__setattr__(self, "score_time", s)

    def score_at(self, performance_time: np.ndarray | float) -> np.ndarray:
        """Nominal score time (s) at the given performance time(s), clipped to the aligned range."""
        return np.interp(performance_time, self.performance_time, self.score_time)

    def performance_at(self, score_time: np.ndarray | float) -> np.ndarray:
        """Performance time (s) at which the given score time(s) are first reached."""
        s = np.asarray(score_time, dtype=np.float64)
        idx = np.clip(np.searchsorted(self.score_time, s, side="left"), 1, self.score_time.size - 1)
        s0, s1 = self.score_time[idx - 1], self.score_time[idx]
        p0, p1 = self.performance_time[idx - 1], self.performance_time[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(s1 > s0, (s - s0) / (s1 - s0), 1.0)
        out = p0 + np.clip(frac, 0.0, 1.0) * (p1 - p0)
        out = np.where(s <= self.score_time[0], self.performance_time[0], out)
        return np.where(s >= self.score_time[-1], self.performance_time[-1], out)
