"""MusicXML scores read with partitura: pickups, repeats (unfolded as played) and tempo marks.

The bundled corpus keeps its music21 reader (its pieces and splits are frozen by the manifest); scores a user
brings, and the scores of match files, are read here. A pickup measure starts the score at beat 0 (what a
performer plays first), repeats are unfolded to the longest playing order, and tempo marks become the tempo
map (quarter notes per minute). Note ids are kept, so note-level alignments (match files) can refer to them.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmm_envs.errors import ScoreLoadError
from lmm_envs.music.score import MAX_BPM, MIN_BPM, Score, TempoMap

MUSICXML_SUFFIXES = {".musicxml", ".xml", ".mxl"}
_ABSENT = object()
DEFAULT_BPM = 100.0  # the nominal tempo of a score without tempo marks (the same as the music21 reader's)


@dataclass(frozen=True)
class ScoreWithIds:
    """A :class:`Score` and, for each of its notes in the file's order, the note id and onset in beats."""

    score: Score
    note_ids: np.ndarray
    note_beats: np.ndarray


def _partitura():
    """Import partitura without its FluidSynth support: where pyfluidsynth and libfluidsynth are installed,
    partitura downloads a SoundFont at import time (which fails offline); lmm_envs renders audio itself."""
    if "partitura" in sys.modules:
        return sys.modules["partitura"]
    saved = sys.modules.get("fluidsynth", _ABSENT)
    sys.modules["fluidsynth"] = None  # partitura's "from fluidsynth import Synth" then raises ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # partitura's imports of sre_parse and friends
            import partitura
    except ImportError as e:  # a core dependency; say so instead of a traceback
        raise ScoreLoadError(f"reading MusicXML and match files needs partitura ({e}); pip install partitura") from None
    finally:
        if saved is _ABSENT:
            del sys.modules["fluidsynth"]
        else:
            sys.modules["fluidsynth"] = saved
    return partitura


def load_musicxml(path: str | Path) -> ScoreWithIds:
    """Read a MusicXML file (``.musicxml``, ``.xml``, ``.mxl``) into a score with its note ids."""
    pt = _partitura()
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pt.load_musicxml(str(p))
    except Exception as e:  # partitura raises many types on malformed XML
        raise ScoreLoadError(f"cannot parse {p} as MusicXML ({type(e).__name__}: {e}); check the file") from None
    return score_from_partitura(parsed, title=p.stem)


def _unfolded(part, pt):
    if not list(part.iter_all(pt.score.Repeat)) and not list(part.iter_all(pt.score.Ending)):
        return part
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pt.score.unfold_part_maximal(part, update_ids=True)


def score_from_partitura(parsed, title: str = "") -> ScoreWithIds:
    """Convert a partitura ``Score`` (or list of parts) into a :class:`Score`: one part per partitura part."""
    pt = _partitura()
    parts = [_unfolded(part, pt) for part in pt.score.iter_parts(getattr(parsed, "parts", parsed))]
    arrays = []
    for index, part in enumerate(parts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            na = part.note_array()
        if len(na):
            arrays.append((index, part, na))
    if not arrays:
        raise ScoreLoadError(f"score {title!r} has no notes (only rests?); give a score with at least one note")
    start = min(float(na["onset_quarter"].min()) for _, _, na in arrays)  # a pickup starts before 0
    pitch, onset, duration, part_index, ids = [], [], [], [], []
    for k, (_, _, na) in enumerate(arrays):
        pitch.append(na["pitch"])
        onset.append(na["onset_quarter"] - start)
        duration.append(na["duration_quarter"])
        part_index.append(np.full(len(na), k))
        ids.append(na["id"].astype(str))
    first = arrays[0][1]
    onset_all = np.concatenate(onset).astype(np.float64)
    score = Score(
        pitch=np.concatenate(pitch), onset=onset_all, duration=np.concatenate(duration),
        velocity=np.full(onset_all.size, 80), part=np.concatenate(part_index),
        tempo=_tempo_map(first, start, pt), part_names=tuple(_part_name(part, k) for k, (_, part, _) in
                                                             enumerate(arrays)),
        fermatas=_quarters(first, first.iter_all(pt.score.Fermata), start),
        measures=_quarters(first, first.iter_all(pt.score.Measure), start),
        title=title,
    )
    return ScoreWithIds(score, np.concatenate(ids), onset_all)


def _part_name(part, index: int) -> str:
    return str(getattr(part, "part_name", None) or getattr(part, "id", None) or f"part{index}")


def _quarters(part, elements, start: float) -> np.ndarray:
    times = [e.start.t for e in elements if e.start is not None]
    if not times:
        return np.zeros(0)
    return np.unique(np.asarray(part.quarter_map(times), dtype=np.float64) - start)


def _tempo_map(part, start: float, pt) -> TempoMap:
    """Quarter-note tempo marks as a tempo map from beat 0 (the first mark holds from the start)."""
    beats, bpm = [], []
    for mark in part.iter_all(pt.score.Tempo):
        try:
            q = 60e6 / float(mark.microseconds_per_quarter)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if not np.isfinite(q):
            continue
        at = max(float(part.quarter_map(mark.start.t)) - start, 0.0)
        q = float(np.clip(q, MIN_BPM, MAX_BPM))
        if beats and np.isclose(at, beats[-1]):
            bpm[-1] = q
        elif not bpm or not np.isclose(q, bpm[-1]):
            beats.append(at)
            bpm.append(q)
    if not beats:
        return TempoMap.constant(DEFAULT_BPM)
    beats[0] = 0.0
    return TempoMap(np.array(beats), np.array(bpm))
