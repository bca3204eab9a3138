"""Note-level match files (the format of the Vienna 4x22 corpus and other performance datasets), read with partitura.

A match file pairs every note of a performance with a note of the score (or marks it inserted / deleted). It
yields a performance (notes in seconds; a note sounds until the sustain pedal releases it) and an alignment:
for each score onset matched by at least one played note, the median time its notes were played. The score is
the MusicXML the match file refers to when given (its note ids are the match file's score ids), else the score
the match file itself describes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmm_envs.errors import AlignmentError, ScoreLoadError
from lmm_envs.music.annotations import BeatAlignment, monotonic_points
from lmm_envs.music.musicxml import ScoreWithIds, _partitura, score_from_partitura
from lmm_envs.music.score import Performance

MATCH_SUFFIXES = {".match"}


@dataclass(frozen=True)
class MatchFile:
    """What a match file holds: the score (with note ids), the performance and the beat alignment."""

    score: ScoreWithIds
    performance: Performance
    alignment: BeatAlignment
    matched: int  # score notes matched by a played note


def load_match(path: str | Path, score: ScoreWithIds | None = None) -> MatchFile:
    """Read a match file; with ``score`` (e.g. :func:`~lmm_envs.music.musicxml.load_musicxml`) its note ids are used."""
    pt = _partitura()
    p = Path(path)
    if not p.is_file():
        raise ScoreLoadError(f"match file not found: {p}; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            performance, pairs, own_score = pt.load_match(str(p), create_score=True)
    except Exception as e:  # partitura raises many types on malformed match lines
        raise ScoreLoadError(f"cannot read {p} as a match file ({type(e).__name__}: {e}); check the file") from None
    perf = _performance(performance, p)
    matches = [(str(a["score_id"]), str(a["performance_id"])) for a in pairs if a.get("label") == "match"]
    if not matches:
        raise AlignmentError(f"match file {p} pairs no score note with a played note; check the file")
    if score is None:
        score = score_from_partitura(own_score, title=p.stem)
    beat_of = dict(zip(score.note_ids.tolist(), score.note_beats.tolist(), strict=True))
    found = [m for m in matches if m[0] in beat_of]
    if len(found) < 0.5 * len(matches):
        raise AlignmentError(f"the score's note ids match only {len(found)} of the {len(matches)} notes paired in {p}; "
                             f"give the MusicXML the match file was made from, or the match file alone")
    onset_of = _performance_onsets(performance)
    beats = np.array([beat_of[s] for s, _ in found])
    times = np.array([onset_of.get(q, np.nan) for _, q in found])
    unique_beats, inverse = np.unique(beats, return_inverse=True)
    medians = np.array([np.nanmedian(times[inverse == k]) if np.any(np.isfinite(times[inverse == k])) else np.nan
                        for k in range(unique_beats.size)])
    alignment = monotonic_points(medians, unique_beats, source=f"match file {p}")
    return MatchFile(score, perf, alignment, len(found))


def _performance_onsets(performance) -> dict[str, float]:
    out = {}
    for part in performance.performedparts:
        for note in part.notes:
            out[str(note["id"])] = float(note["note_on"])
    return out


def _performance(performance, path: Path) -> Performance:
    """The played notes; each sounds until its key is released or, with the pedal down, until the pedal lifts."""
    cols: dict[str, list] = {k: [] for k in ("pitch", "onset", "offset", "velocity", "part")}
    for part in performance.performedparts:
        for note in part.notes:
            on = float(note["note_on"])
            off = float(note.get("sound_off", note["note_off"]) or note["note_off"])
            cols["pitch"].append(int(note["midi_pitch"]))
            cols["onset"].append(on)
            cols["offset"].append(max(off, float(note["note_off"])))
            cols["velocity"].append(int(note.get("velocity", 64)))
            cols["part"].append(0)
    if not cols["pitch"]:
        raise ScoreLoadError(f"match file {path} holds no played notes")
    return Performance(**{k: np.asarray(v) for k, v in cols.items()})
