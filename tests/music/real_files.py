"""Small real-performance files the tests write themselves: MusicXML scores, match files, beat annotations."""

from __future__ import annotations

from pathlib import Path

NOTE = ('<note id="{id}"><pitch><step>{step}</step><octave>{octave}</octave></pitch><duration>{dur}</duration>'
        '<type>{type}</type></note>')
TYPES = {1: "quarter", 2: "half", 4: "whole"}


def _notes(notes) -> str:
    return "".join(NOTE.format(id=i, step=s, octave=o, dur=d, type=TYPES[d]) for i, s, o, d in notes)


def musicxml(pickup=True, repeat=False, second_tempo: int | None = 120, bars: int = 4) -> str:
    """A one-part MusicXML score in 4/4 at 60 bpm: an optional pickup quarter (G4, id n0), then ``bars`` bars of
    C5 E5 half notes (ids b<k>a, b<k>b), the first bar optionally between repeat signs, and a tempo change to
    ``second_tempo`` at the last bar."""
    attributes = ('<attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time>'
                  '</attributes><direction><direction-type><metronome><beat-unit>quarter</beat-unit>'
                  '<per-minute>60</per-minute></metronome></direction-type><sound tempo="60"/></direction>')
    measures = []
    if pickup:
        measures.append(f'<measure number="0" implicit="yes">{attributes}{_notes([("n0", "G", 4, 1)])}</measure>')
    for k in range(1, bars + 1):
        body = "" if measures else attributes
        if repeat and k == 1:
            body += '<barline location="left"><repeat direction="forward"/></barline>'
        if second_tempo and k == bars:
            body += (f'<direction><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>{second_tempo}'
                     f'</per-minute></metronome></direction-type><sound tempo="{second_tempo}"/></direction>')
        body += _notes([(f"b{k}a", "C", 5, 2), (f"b{k}b", "E", 5, 2)])
        if repeat and k == 1:
            body += '<barline location="right"><repeat direction="backward"/></barline>'
        measures.append(f'<measure number="{k}">{body}</measure>')
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list>'
            '<score-part id="P1"><part-name>Piano</part-name></score-part></part-list>'
            f'<part id="P1">{"".join(measures)}</part></score-partwise>')


def write_musicxml(path: Path, **kwargs) -> Path:
    path.write_text(musicxml(**kwargs), encoding="utf-8")
    return path


def write_match(path: Path, score_path: Path, onsets: list[float], order: list[int] | None = None) -> Path:
    """A match file pairing the score's notes (in score order) with played notes at ``onsets`` (seconds);
    ``order`` permutes which score note each played note matches (to test notes played out of order)."""
    import numpy as np

    from lmm_envs.music.musicxml import _partitura

    pt = _partitura()
    part = pt.load_musicxml(str(score_path)).parts[0]
    na = part.note_array()
    na = na[np.lexsort((na["pitch"], na["onset_div"]))]
    if len(onsets) != len(na):
        raise ValueError(f"need {len(na)} onsets, got {len(onsets)}")
    notes = [dict(id=f"p{k}", midi_pitch=int(p), note_on=float(t), note_off=float(t) + 0.4, velocity=70,
                  track=0, channel=0) for k, (p, t) in enumerate(zip(na["pitch"], onsets, strict=True))]
    order = order or list(range(len(na)))
    alignment = [{"label": "match", "score_id": str(na["id"][order[k]]), "performance_id": f"p{k}"}
                 for k in range(len(na))]
    pt.save_match(alignment, pt.performance.PerformedPart(notes), part, out=str(path))
    return path
