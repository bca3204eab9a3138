"""A folder of real performances is a dataset: which files make which pieces.

:func:`find_pieces` reads a folder (recursively) in this order:

1. a ``pieces.csv`` at its top: a piece list (header ``score,performance,alignment``), used as it is;
2. otherwise every match file (``*.match``) is a piece: its score is the MusicXML file whose name is the longest
   prefix of the match file's name (``Chopin_op10_no3.musicxml`` for ``Chopin_op10_no3_p01.match``), or the
   score the match file describes when there is none; it is played from its own notes, or from a recording
   (``.wav``/``.flac``) with the match file's name when there is one;
3. otherwise every performance (MIDI or audio) with an alignment of the same name beside it (``.csv`` or a
   beat-annotation ``.txt``) is a piece, its score found by the same longest-prefix rule among the MusicXML and
   MIDI files that are not performances.

The Vienna 4x22 corpus (``match/``, ``musicxml/``, ``midi/`` folders) is read by rule 2.
"""

from __future__ import annotations

from pathlib import Path

from lmm_envs.errors import ConfigError
from lmm_envs.music.annotations import BEAT_ANNOTATION_SUFFIXES
from lmm_envs.music.io import MIDI_SUFFIXES as MIDI
from lmm_envs.music.match import MATCH_SUFFIXES
from lmm_envs.music.musicxml import MUSICXML_SUFFIXES as MUSICXML
from lmm_envs.pieces import AUDIO_SUFFIXES as AUDIO
from lmm_envs.pieces import load_piece_list

ALIGNMENTS = {".csv"} | BEAT_ANNOTATION_SUFFIXES  # beside a performance of the same name (match files: their own rule)


def _files(folder: Path, suffixes: set[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _longest_prefix(name: str, candidates: list[Path]) -> Path | None:
    matches = [c for c in candidates if name.startswith(c.stem) and name != c.stem]
    exact = [c for c in candidates if c.stem == name]
    pool = matches or exact
    return max(pool, key=lambda c: len(c.stem)) if pool else None


def find_pieces(folder: str | Path) -> list[dict[str, str | None]]:
    """The pieces of a dataset folder as piece-list rows (see the module docstring for the rules)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"dataset folder not found: {root}")
    if (root / "pieces.csv").is_file():
        return load_piece_list(root / "pieces.csv")
    scores = _files(root, MUSICXML)
    audio = _files(root, AUDIO)
    matches = _files(root, MATCH_SUFFIXES)
    if matches:
        rows = []
        for m in matches:
            score = _longest_prefix(m.stem, scores)
            recording = next((a for a in audio if a.stem == m.stem), None)
            if score is None:
                rows.append({"score": str(m), "performance": str(recording) if recording else None, "alignment": None})
            else:
                rows.append({"score": str(score), "performance": str(recording) if recording else None,
                             "alignment": str(m)})
        return rows
    midi = _files(root, MIDI)
    alignments = {a.stem: a for a in _files(root, ALIGNMENTS) if a.name != "pieces.csv"}
    performances = [p for p in midi + audio if p.stem in alignments]
    score_pool = scores + [m for m in midi if m not in performances]
    rows = []
    for perf in performances:
        score = _longest_prefix(perf.stem, score_pool)
        if score is None:
            raise ConfigError(f"dataset folder {root}: no score for performance {perf.name}; add a MusicXML or MIDI "
                              f"score whose name begins its name (e.g. {perf.stem.rsplit('_', 1)[0]}.musicxml)")
        rows.append({"score": str(score), "performance": str(perf), "alignment": str(alignments[perf.stem])})
    if not rows:
        raise ConfigError(f"dataset folder {root} holds no pieces: give match files, performances with an alignment "
                          f"of the same name (.csv or beat-annotation .txt) and their scores, or a pieces.csv")
    return rows
