"""Loaders for scores (MIDI, MusicXML and what music21 reads), MIDI performances and alignment CSVs.

Every failure a user can cause becomes a :class:`~lmm_envs.errors.LMMError` with one line that names the file.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np

from lmm_envs.errors import AlignmentError, ScoreLoadError
from lmm_envs.music.score import Alignment, Performance, Score, TempoMap

MIDI_SUFFIXES = {".mid", ".midi", ".smf"}
MUSIC21_SUFFIXES = {".xml", ".mxl", ".musicxml", ".abc", ".krn"}
DEFAULT_BPM = 100.0
ALIGNMENT_HEADER = ("performance_time", "score_time")


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ScoreLoadError(f"{what} file not found: {p}; check the path")
    if p.stat().st_size == 0:
        raise ScoreLoadError(f"{what} file is empty: {p}; give a non-empty file")
    return p


def load_score(path: str | Path) -> Score:
    """Load a score from MIDI (pretty_midi) or MusicXML / ABC / Humdrum (music21)."""
    p = _existing(path, "score")
    suffix = p.suffix.lower()
    read = {**dict.fromkeys(MIDI_SUFFIXES, _score_from_midi), **dict.fromkeys(MUSIC21_SUFFIXES, _score_from_music21)}
    if suffix in read:
        try:
            return read[suffix](p)
        except ScoreLoadError as e:  # what the score itself says is wrong (tempo, notes), named with its file
            raise ScoreLoadError(str(e) if str(p) in str(e) else f"{p}: {e}") from None
    raise ScoreLoadError(
        f"unsupported score format {suffix!r} for {p}; use one of {sorted(MIDI_SUFFIXES | MUSIC21_SUFFIXES)}"
    )


def _read_midi(p: Path):
    import pretty_midi

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(str(p))
    except Exception as e:  # pretty_midi/mido raise many types on corrupt bytes
        raise ScoreLoadError(f"{p} is not a readable MIDI file ({type(e).__name__}: {e}); check the file") from None


def _score_from_midi(p: Path) -> Score:
    pm = _read_midi(p)
    res = float(pm.resolution)
    instruments = [i for i in pm.instruments if not i.is_drum and i.notes]
    if not instruments:
        raise ScoreLoadError(f"{p} has no pitched notes; give a score with at least one note")
    cols: dict[str, list] = {k: [] for k in ("pitch", "onset", "duration", "velocity", "part")}
    for part, inst in enumerate(instruments):
        for n in inst.notes:
            on = pm.time_to_tick(n.start) / res
            off = pm.time_to_tick(n.end) / res
            cols["pitch"].append(n.pitch)
            cols["onset"].append(on)
            cols["duration"].append(off - on)
            cols["velocity"].append(n.velocity)
            cols["part"].append(part)
    times, tempi = pm.get_tempo_changes()
    beats = np.array([pm.time_to_tick(t) / res for t in times]) if len(times) else np.zeros(1)
    tempi = np.asarray(tempi, dtype=np.float64) if len(tempi) else np.array([120.0])
    beats[0] = 0.0
    keep = np.concatenate([np.diff(beats) > 0, [True]])  # the last of several changes at one beat wins
    tempo = TempoMap(beats[keep] if keep.any() else beats[:1], tempi[keep] if keep.any() else tempi[:1])
    if tempo.beats[0] != 0.0:
        tempo = TempoMap(np.concatenate([[0.0], tempo.beats]), np.concatenate([[tempo.bpm[0]], tempo.bpm]))
    downbeats = [pm.time_to_tick(t) / res for t in pm.get_downbeats()]
    return Score(
        **{k: np.asarray(v) for k, v in cols.items()},
        tempo=tempo,
        part_names=tuple(i.name or f"part{k}" for k, i in enumerate(instruments)),
        measures=np.asarray(downbeats, dtype=np.float64),
        title=p.stem,
    )


def _score_from_music21(p: Path) -> Score:
    from music21 import converter, stream

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = converter.parse(str(p))
    except Exception as e:
        raise ScoreLoadError(f"music21 cannot parse {p} ({type(e).__name__}: {e}); check the file") from None
    if isinstance(parsed, stream.Opus):
        if not parsed.scores:
            raise ScoreLoadError(f"{p} holds no score")
        parsed = parsed.scores[0]
    return score_from_music21_stream(parsed, title=p.stem, in_place=True)


def score_from_music21_stream(s, title: str = "", in_place: bool = False) -> Score:
    """Convert a parsed music21 score (or part) into a :class:`Score`; ties are merged.

    ``in_place=True`` merges the ties in ``s`` itself (a stream parsed only to be converted): about 3x faster
    than music21's default of merging them in a deep copy, with the same result.
    """
    from music21 import expressions

    parts = list(s.parts) if hasattr(s, "parts") and len(s.parts) else [s]
    cols: dict[str, list] = {k: [] for k in ("pitch", "onset", "duration", "velocity", "part")}
    fermatas: set[float] = set()
    names = []
    part_index = 0
    for part in parts:
        flat = (part.stripTies(inPlace=True) or part).flatten() if in_place else part.stripTies().flatten()
        found = False
        for el in flat.notes:
            offset = float(el.offset)
            ql = float(el.quarterLength)
            vel = el.volume.velocity if el.volume is not None and el.volume.velocity is not None else 80
            pitches = getattr(el, "pitches", ())
            for pitch in pitches:
                cols["pitch"].append(int(pitch.midi))
                cols["onset"].append(offset)
                cols["duration"].append(ql)
                cols["velocity"].append(int(vel))
                cols["part"].append(part_index)
                found = True
            if any(isinstance(e, expressions.Fermata) for e in el.expressions):
                fermatas.add(offset)
        if found:
            names.append(str(part.partName or f"part{part_index}"))
            part_index += 1
    if not cols["pitch"]:
        raise ScoreLoadError(f"score {title!r} has no notes (only rests?); give a score with at least one note")
    measures = [float(m.offset) for m in parts[0].getElementsByClass("Measure")]
    return Score(
        **{k: np.asarray(v) for k, v in cols.items()},
        tempo=_tempo_from_music21(s),
        part_names=tuple(names),
        fermatas=np.array(sorted(fermatas)),
        measures=np.asarray(measures),
        title=title or str(getattr(s.metadata, "title", "") or ""),
    )


def _tempo_from_music21(s) -> TempoMap:
    try:
        spans = [(float(a), float(b), mm) for a, b, mm in s.metronomeMarkBoundaries() if b > a]
    except Exception:
        spans = []
    beats, bpm = [], []
    for start, _end, mm in spans:
        q = mm.getQuarterBPM()
        if q is None:
            continue
        if beats and math.isclose(start, beats[-1]):
            bpm[-1] = float(q)
            continue
        beats.append(start)
        bpm.append(float(q))
    if not beats:
        return TempoMap.constant(DEFAULT_BPM)
    beats[0] = 0.0
    return TempoMap(np.array(beats), np.array(bpm))


def load_performance_midi(path: str | Path) -> Performance:
    """Load a performance (notes in seconds with velocities) from a MIDI file; one part per instrument."""
    p = _existing(path, "performance")
    pm = _read_midi(p)
    cols: dict[str, list] = {k: [] for k in ("pitch", "onset", "offset", "velocity", "part")}
    part = 0
    for inst in pm.instruments:
        if inst.is_drum or not inst.notes:
            continue
        for n in inst.notes:
            cols["pitch"].append(n.pitch)
            cols["onset"].append(n.start)
            cols["offset"].append(n.end)
            cols["velocity"].append(n.velocity)
            cols["part"].append(part)
        part += 1
    if not cols["pitch"]:
        raise ScoreLoadError(f"{p} has no pitched notes; give a performance with at least one note")
    return Performance(**{k: np.asarray(v) for k, v in cols.items()})


def load_alignment_csv(path: str | Path) -> Alignment:
    """Load an alignment CSV with header ``performance_time,score_time`` (seconds), one matching point a row."""
    p = Path(path)
    if not p.is_file():
        raise AlignmentError(f"alignment file not found: {p}; check the path")
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise AlignmentError(f"alignment file {p} is not UTF-8 text; save it as a UTF-8 CSV") from None
    except csv.Error as e:
        raise AlignmentError(f"alignment file {p} is not a readable CSV ({e})") from None
    if not rows:
        raise AlignmentError(f"alignment file {p} is empty; it needs the header performance_time,score_time and rows")
    header = tuple(c.strip() for c in rows[0])
    if header[:2] != ALIGNMENT_HEADER:
        raise AlignmentError(
            f"alignment file {p} lacks the header 'performance_time,score_time' (found {','.join(header)!r}); add it"
        )
    values = []
    for i, r in enumerate(rows[1:], start=2):
        try:
            values.append((float(r[0]), float(r[1])))
        except (ValueError, IndexError):
            raise AlignmentError(f"alignment file {p} row {i} is not two numbers: {','.join(r)!r}") from None
    if not values:
        raise AlignmentError(f"alignment file {p} has a header but no rows; add matching points")
    arr = np.asarray(values, dtype=np.float64)
    try:
        return Alignment(arr[:, 0], arr[:, 1])
    except AlignmentError as e:
        raise AlignmentError(f"alignment file {p}: {e}") from None


def save_alignment_csv(alignment: Alignment, path: str | Path) -> None:
    """Write an alignment as CSV with the header ``performance_time,score_time``."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ALIGNMENT_HEADER)
        for a, b in zip(alignment.performance_time, alignment.score_time, strict=True):
            w.writerow([f"{a:.6f}", f"{b:.6f}"])
