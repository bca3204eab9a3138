"""A :class:`Piece` is what an environment plays: a score, a performance of it, the performance's audio features
and the ground-truth alignment between them. Pieces come from the bundled corpus (``prepare_piece("bach/bwv66.6")``)
or from the user's own files (:func:`load_piece`), and are cached on disk (see :mod:`lmm_envs.audio.cache`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from lmm_envs.audio.cache import Cache, default_cache, make_key
from lmm_envs.audio.features import FEATURE_VERSION, FPS, spectrogram
from lmm_envs.audio.synth import SYNTHS, Synth, make_synth
from lmm_envs.errors import AlignmentError, ConfigError
from lmm_envs.music import corpus
from lmm_envs.music.expressive import check_expressiveness, render_performance
from lmm_envs.music.io import load_alignment_csv, load_performance_midi, load_score
from lmm_envs.music.score import Alignment, Performance, Score, TempoMap

RENDER_VERSION = 1
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
_MEMORY: OrderedDict[str, Piece] = OrderedDict()
_MEMORY_SIZE = 64
_KEYS: dict[tuple, str] = {}  # (piece id, expressiveness, seed, synth name) -> the cache key they make
_SCORES: OrderedDict[str, Score] = OrderedDict()  # parsed scores are small: keep many
_SCORES_SIZE = 2048


@dataclass(frozen=True, eq=False)
class Piece:
    """A score with one performance of it: audio features and the exact alignment.

    ``spectrogram`` is ``(N_BINS, n_frames)`` at :data:`~lmm_envs.audio.features.FPS` frames/s of the performance.
    ``performance`` is None when the performance is a recording (audio only).
    """

    id: str
    score: Score
    performance: Performance | None
    alignment: Alignment
    spectrogram: np.ndarray
    synth: str = "harmonic"
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.spectrogram.shape[1])

    @property
    def duration(self) -> float:
        return self.n_frames / FPS

    @cached_property
    def frame_times(self) -> np.ndarray:
        return np.arange(self.n_frames) / FPS

    @cached_property
    def score_positions(self) -> np.ndarray:
        """True nominal score time (s) at each performance frame."""
        return self.alignment.score_at(self.frame_times)

    @cached_property
    def onset_score_times(self) -> np.ndarray:
        """Distinct score onsets, in nominal seconds."""
        return self.score.tempo.beats_to_seconds(self.score.unique_onsets())

    @cached_property
    def onset_performance_times(self) -> np.ndarray:
        """When each distinct score onset happens in the performance (s), from the alignment."""
        return self.alignment.performance_at(self.onset_score_times)


SCORE_ARRAYS = ("pitch", "onset", "duration", "velocity", "part", "tempo_beats", "tempo_bpm", "fermatas", "measures",
                "part_names", "title")
PIECE_ARRAYS = ("p_pitch", "p_onset", "p_offset", "p_velocity", "p_part", "a_perf", "a_score", "spectrogram")


# --- scores ------------------------------------------------------------------------------------------------
def score_to_arrays(score: Score) -> dict[str, np.ndarray]:
    return dict(
        pitch=score.pitch, onset=score.onset, duration=score.duration, velocity=score.velocity, part=score.part,
        tempo_beats=score.tempo.beats, tempo_bpm=score.tempo.bpm, fermatas=score.fermatas, measures=score.measures,
        part_names=np.array(score.part_names, dtype=str), title=np.array(score.title),
    )


def score_from_arrays(a: dict[str, np.ndarray]) -> Score:
    return Score(
        pitch=a["pitch"], onset=a["onset"], duration=a["duration"], velocity=a["velocity"], part=a["part"],
        tempo=TempoMap(a["tempo_beats"], a["tempo_bpm"]), part_names=tuple(str(x) for x in a["part_names"]),
        fermatas=a["fermatas"], measures=a["measures"], title=str(a["title"]),
    )


def corpus_score(piece_id: str, cache: Cache | None = None) -> Score:
    """The parsed score of a bundled piece (parsed once, then read from the cache and kept in memory)."""
    info = corpus.piece_info(piece_id)
    cache = cache or default_cache()
    key = make_key("score", source=info.sha256, id=piece_id)
    hit = _SCORES.get(key)
    if hit is None:
        arrays = cache.get_or_create(key, lambda: score_to_arrays(corpus.load_corpus_score(piece_id)),
                                     required=SCORE_ARRAYS)
        hit = score_from_arrays(arrays)
        _SCORES[key] = hit
        while len(_SCORES) > _SCORES_SIZE:
            _SCORES.popitem(last=False)
    return hit


def performance_seed(piece_id: str, variant: int) -> int:
    """The rendering seed of performance ``variant`` of a piece (stable across runs and machines)."""
    return int(hashlib.sha256(f"{piece_id}#{int(variant)}".encode()).hexdigest()[:8], 16)


def _synth_name(synth: str | Synth) -> str | None:
    """The name of a built-in synth (given by name or as the shared instance), None for any other object."""
    if isinstance(synth, str):
        return synth
    name = getattr(synth, "name", None)
    return name if name in SYNTHS and make_synth(name) is synth else None


# --- preparing pieces --------------------------------------------------------------------------------------
def prepare_piece(
    source: str | Score,
    expressiveness: float = 1.0,
    seed: int = 0,
    synth: str | Synth = "harmonic",
    cache: Cache | None = None,
) -> Piece:
    """Render, synthesize and analyse one performance of a piece (or read it from the cache).

    ``source`` is a bundled piece id or a :class:`Score`. The same arguments give the same piece, bit for bit.
    """
    # a bundled piece kept in memory is found from its arguments, without re-deriving its cache key
    name = _synth_name(synth)
    by_name = (source, expressiveness, seed, name) if isinstance(source, str) and name and cache is None else None
    known = _KEYS.get(by_name) if by_name is not None else None
    if known in _MEMORY:
        _MEMORY.move_to_end(known)
        return _MEMORY[known]
    synth_obj = make_synth(synth)
    score = corpus_score(source, cache) if isinstance(source, str) else source
    if not isinstance(score, Score):
        raise ConfigError(f"source must be a piece id or a Score, got {type(source).__name__}")
    piece_id = source if isinstance(source, str) else (score.title or score.content_hash()[:12])
    check_expressiveness(expressiveness)
    key = make_key(
        "piece", score=score.content_hash(), expressiveness=float(expressiveness), seed=int(seed),
        synth=synth_obj.cache_key(), features=FEATURE_VERSION, render=RENDER_VERSION,
    )
    if by_name is not None and len(_KEYS) < 100_000:
        _KEYS[by_name] = key
    hit = _MEMORY.get(key)
    if hit is not None:
        _MEMORY.move_to_end(key)
        return hit

    def build() -> dict[str, np.ndarray]:
        perf, alignment = render_performance(score, expressiveness, seed=int(seed))
        audio = synth_obj.render(perf)
        return dict(
            p_pitch=perf.pitch, p_onset=perf.onset, p_offset=perf.offset, p_velocity=perf.velocity,
            p_part=perf.part, a_perf=alignment.performance_time, a_score=alignment.score_time,
            spectrogram=spectrogram(audio, synth_obj.sample_rate),
        )

    a = (cache or default_cache()).get_or_create(key, build, required=PIECE_ARRAYS)
    piece = Piece(
        id=piece_id, score=score,
        performance=Performance(a["p_pitch"], a["p_onset"], a["p_offset"], a["p_velocity"], a["p_part"]),
        alignment=Alignment(a["a_perf"], a["a_score"]), spectrogram=a["spectrogram"], synth=synth_obj.name,
        meta={"expressiveness": float(expressiveness), "seed": int(seed)},
    )
    _MEMORY[key] = piece
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return piece


def load_user_score(path: str | Path) -> Score:
    """Load a score file; its title (and piece id) is the file name without suffix."""
    sc = load_score(path)
    return Score(**{**sc.__dict__, "title": Path(path).stem})


def load_piece(
    score: str | Path,
    performance: str | Path | None = None,
    alignment: str | Path | None = None,
    expressiveness: float = 1.0,
    seed: int = 0,
    synth: str | Synth = "harmonic",
) -> Piece:
    """A piece from your own files.

    ``score``: MIDI or MusicXML. ``performance``: None (one is rendered expressively, with its exact alignment),
    a MIDI performance or an audio recording (WAV/FLAC). A real performance needs ``alignment``: a CSV with header
    ``performance_time,score_time`` (seconds; score_time on the score's own nominal timeline).
    """
    sc = load_user_score(score)
    if performance is None:
        if alignment is not None:
            raise ConfigError("an alignment was given without a performance; give both, or neither to render one")
        return prepare_piece(sc, expressiveness=expressiveness, seed=seed, synth=synth)
    if alignment is None:
        raise ConfigError(
            f"performance {performance} needs an alignment CSV (performance_time,score_time) to serve as ground truth"
        )
    align = load_alignment_csv(alignment)
    perf_path = Path(performance)
    synth_obj = make_synth(synth)
    if perf_path.suffix.lower() in AUDIO_SUFFIXES:
        from lmm_envs.audio.wav import read_audio

        perf = None
        audio = read_audio(perf_path, synth_obj.sample_rate)
    else:
        perf = load_performance_midi(perf_path)
        audio = synth_obj.render(perf)
    spec = spectrogram(audio, synth_obj.sample_rate)
    _check_alignment_within(align, spec.shape[1] / FPS, alignment)
    return Piece(
        id=Path(score).stem, score=sc, performance=perf, alignment=align,
        spectrogram=spec, synth=synth_obj.name,
        meta={"performance": str(perf_path), "alignment": str(alignment)},
    )


ALIGNMENT_OVERRUN = 1.0  # s an alignment may reach past the performance's end (annotation rounding)


def _check_alignment_within(alignment: Alignment, duration: float, path) -> None:
    """Refuse an alignment that does not lie in the performance's own seconds (it would score nothing)."""
    first, last = float(alignment.performance_time[0]), float(alignment.performance_time[-1])
    if first >= duration or last > duration + ALIGNMENT_OVERRUN:
        raise AlignmentError(f"alignment {path} spans performance times {first:g}..{last:g} s but the performance "
                             f"lasts {duration:.2f} s; performance_time must be seconds of this performance")


def load_piece_list(path: str | Path) -> list[dict[str, str | None]]:
    """Read a piece list CSV (header ``score,performance,alignment``; paths relative to the CSV)."""
    import csv
    import io

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"piece list not found: {p}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"piece list {p} is not UTF-8 text; save it as a UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or "score" not in reader.fieldnames:
        raise ConfigError(f"piece list {p} needs the header score,performance,alignment")
    rows = []
    try:
        for row in reader:
            entry = {}
            for col in ("score", "performance", "alignment"):
                value = (row.get(col) or "").strip()
                entry[col] = str((p.parent / value).resolve()) if value else None
            if entry["score"] is None:
                raise ConfigError(f"piece list {p} has a row without a score")
            rows.append(entry)
    except csv.Error as e:
        raise ConfigError(f"piece list {p} is not a readable CSV ({e})") from None
    if not rows:
        raise ConfigError(f"piece list {p} names no pieces")
    return rows


def part_spectrogram(piece: Piece, parts: list[int], synth: str | Synth = "harmonic",
                     cache: Cache | None = None) -> np.ndarray:
    """The spectrogram of only some parts of a piece's performance (e.g. the soloist), as long as the piece's.

    Needs a rendered performance (one whose notes are the score's); cached like the piece itself.
    """
    if piece.performance is None or piece.performance.n_notes != piece.score.n_notes:
        raise ConfigError(f"piece {piece.id!r} has no rendered performance to take parts from")
    synth_obj = make_synth(synth)
    key = make_key("parts", performance=piece.performance.content_hash(), parts=",".join(map(str, parts)),
                   synth=synth_obj.cache_key(), features=FEATURE_VERSION, frames=piece.n_frames)

    def build() -> dict[str, np.ndarray]:
        audio = synth_obj.render(piece.performance.select_parts(parts), duration=piece.duration)
        spec = spectrogram(audio, synth_obj.sample_rate)
        out = np.zeros((spec.shape[0], piece.n_frames), dtype=np.float32)
        n = min(piece.n_frames, spec.shape[1])
        out[:, :n] = spec[:, :n]
        return {"spectrogram": out}

    return (cache or default_cache()).get_or_create(key, build, required=("spectrogram",))["spectrogram"]
