"""A :class:`Piece` is what an environment plays: a score, a performance of it, the performance's audio features
and the ground-truth alignment between them. Pieces come from the bundled corpus (``prepare_piece("bach/bwv66.6")``)
or from the user's own files (:func:`load_piece`), and are cached on disk (see :mod:`lmm_envs.audio.cache`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from lmm_envs.audio.cache import Cache, default_cache, make_key
from lmm_envs.audio.features import FEATURE_VERSION, FPS, spectrogram
from lmm_envs.audio.synth import SYNTHS, Synth, make_synth
from lmm_envs.errors import AlignmentError, ConfigError, ScoreLoadError, TempoWarning
from lmm_envs.music import corpus
from lmm_envs.music.annotations import (
    BEAT_ANNOTATION_SUFFIXES,
    TEMPO_WARNING_RATIO,
    BeatAlignment,
    load_beat_annotations,
)
from lmm_envs.music.expressive import DEFAULT_STYLE, check_expressiveness, check_style, render_performance
from lmm_envs.music.io import (
    MIDI_SUFFIXES,
    MUSIC21_SUFFIXES,
    load_alignment_csv,
    load_performance_midi,
    load_score,
)
from lmm_envs.music.match import MATCH_SUFFIXES, load_match
from lmm_envs.music.musicxml import MUSICXML_SUFFIXES, ScoreWithIds, load_musicxml
from lmm_envs.music.score import MAX_BPM, MIN_BPM, Alignment, Performance, Score, TempoMap

RENDER_VERSION = 1
PERFORMANCES_PER_PIECE = 8  # seeded renderings an env draws from per piece, and what `data prepare` makes
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
_MEMORY: OrderedDict[str, Piece] = OrderedDict()
_MEMORY_SIZE = 64
_KEYS: dict[tuple, str] = {}  # (piece id, expressiveness, seed, synth name, style) -> the cache key they make
_SCORES: OrderedDict[str, Score] = OrderedDict()  # parsed scores are small: keep many
_SCORES_SIZE = 2048
_BUILDS = [0]  # renderings built in this process (cache misses), for envs to notice an unprepared split
_EXTRAS_BUILT = [0]  # what the playing envs read besides a rendering (targets, soloist's part), built in this process


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

    @property
    def onset_score_times(self) -> np.ndarray:
        """Distinct score onsets, in nominal seconds (computed once per score, for all its renderings)."""
        return self.score.unique_onset_seconds()

    @cached_property
    def onset_performance_times(self) -> np.ndarray:
        """When each distinct score onset happens in the performance (s), from the alignment."""
        return self.alignment.performance_at(self.onset_score_times)


SCORE_ARRAYS = ("pitch", "onset", "duration", "velocity", "part", "tempo_beats", "tempo_bpm", "fermatas", "measures",
                "part_names", "title", "content_hash")
PIECE_ARRAYS = ("p_pitch", "p_onset", "p_offset", "p_velocity", "p_part", "a_perf", "a_score", "spectrogram")


# --- scores ------------------------------------------------------------------------------------------------
def score_to_arrays(score: Score) -> dict[str, np.ndarray]:
    return dict(
        pitch=score.pitch, onset=score.onset, duration=score.duration, velocity=score.velocity, part=score.part,
        tempo_beats=score.tempo.beats, tempo_bpm=score.tempo.bpm, fermatas=score.fermatas, measures=score.measures,
        part_names=np.array(score.part_names, dtype=str), title=np.array(score.title),
        content_hash=np.array(score.content_hash()),
    )


def score_from_arrays(a: dict[str, np.ndarray]) -> Score:
    score = Score(
        pitch=a["pitch"], onset=a["onset"], duration=a["duration"], velocity=a["velocity"], part=a["part"],
        tempo=TempoMap(a["tempo_beats"], a["tempo_bpm"]), part_names=tuple(str(x) for x in a["part_names"]),
        fermatas=a["fermatas"], measures=a["measures"], title=str(a["title"]),
    )
    if "content_hash" in a:  # written beside the columns it digests (the entry's own SHA-256 vouches for both)
        score.__dict__["_content_hash"] = str(a["content_hash"])
    return score


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


def renderings_built() -> int:
    """How many renderings :func:`prepare_piece` has built (not found in the cache) in this process."""
    return _BUILDS[0]


def extras_built() -> int:
    """How many of what the playing envs read besides a rendering (a SightReading / PlayByEar target, the soloist's
    part of an Accompaniment piece) were built in this process, not found in the cache
    (``lmm-envs data prepare --playing-targets`` prepares them)."""
    return _EXTRAS_BUILT[0]


def count_extra_built() -> None:
    """Records that one of :func:`extras_built`'s arrays was built (called by the code that builds it)."""
    _EXTRAS_BUILT[0] += 1


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
    style: str = DEFAULT_STYLE,
) -> Piece:
    """Render, synthesize and analyse one performance of a piece (or read it from the cache).

    ``source`` is a bundled piece id or a :class:`Score`; ``style`` the expressive style (see
    :mod:`lmm_envs.music.expressive`). The same arguments give the same piece, bit for bit.
    """
    # a bundled piece kept in memory is found from its arguments, without re-deriving its cache key
    name = _synth_name(synth)
    by_name = (source, expressiveness, seed, name, style) if isinstance(source, str) and name and cache is None \
        else None
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
    check_style(style)
    key = make_key(
        "piece", score=score.content_hash(), expressiveness=float(expressiveness), seed=int(seed),
        synth=synth_obj.cache_key(), features=FEATURE_VERSION, render=RENDER_VERSION,
        **({"style": style} if float(expressiveness) > 0 else {}),  # deadpan is the same in every style
    )
    if by_name is not None and len(_KEYS) < 100_000:
        _KEYS[by_name] = key
    hit = _MEMORY.get(key)
    if hit is not None:
        _MEMORY.move_to_end(key)
        return hit

    def build() -> dict[str, np.ndarray]:
        _BUILDS[0] += 1
        perf, alignment = render_performance(score, expressiveness, seed=int(seed), style=style)
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
        meta={"expressiveness": float(expressiveness), "seed": int(seed), "style": style},
    )
    _MEMORY[key] = piece
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return piece


SCORE_FILE_SUFFIXES = MIDI_SUFFIXES | MUSIC21_SUFFIXES | MUSICXML_SUFFIXES | MATCH_SUFFIXES
ALIGNMENT_SUFFIXES = {".csv"} | BEAT_ANNOTATION_SUFFIXES | MATCH_SUFFIXES
NOMINAL_TEMPI = ("score", "performance")


def _read_score(path: str | Path) -> ScoreWithIds | Score:
    """A user's score: MusicXML through partitura (note ids kept), anything else through :func:`load_score`."""
    p = Path(path)
    if p.suffix.lower() in MUSICXML_SUFFIXES:
        if not p.is_file():
            raise ScoreLoadError(f"score file not found: {p}; check the path")
        return load_musicxml(p)
    if p.suffix.lower() in MATCH_SUFFIXES:
        return load_match(p).score
    return load_score(p)


def load_user_score(path: str | Path) -> Score:
    """Load a score file (MIDI, MusicXML, ABC, Humdrum, or the score a match file describes); its title (and piece
    id) is the file name without suffix."""
    sc = _read_score(path)
    return _titled(sc.score if isinstance(sc, ScoreWithIds) else sc, Path(path).stem)


def _titled(score: Score, title: str) -> Score:
    return replace(score, title=title)  # the fields only, not what a score keeps beside them (digest, derived)


_LOADED: OrderedDict[tuple, Piece] = OrderedDict()  # pieces from a user's files, by paths, file stamps, options
_LOADED_SIZE = 256
_WARNED: set[tuple[str, float]] = set()


def _file_stamp(path) -> tuple:
    if path is None:
        return (None,)
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return (str(p),)
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def load_piece(
    score: str | Path,
    performance: str | Path | None = None,
    alignment: str | Path | None = None,
    expressiveness: float = 1.0,
    seed: int = 0,
    synth: str | Synth = "harmonic",
    nominal_tempo: str = "score",
    cache: Cache | None = None,
) -> Piece:
    """A piece from your own files.

    ``score``: MIDI, MusicXML (pickups, repeats and tempo marks read with partitura), or a match file (which holds
    score, performance and alignment at once). ``performance``: None (one is rendered expressively with its exact
    alignment, or a match file's own notes are played), a MIDI performance or an audio recording (WAV/FLAC).
    A real performance needs ``alignment``: a CSV with header ``performance_time,score_time`` (seconds; score_time
    on the score's own nominal timeline), a beat-annotation file (``.txt``: ``performance_time [beat]`` per line)
    or a match file (note-level; its score ids are the MusicXML's note ids).

    ``nominal_tempo="performance"`` replaces the score's tempo marks by the performance's own mean tempo, so that
    a performer far from the marked tempo is followed at ratio ~1 (a warning suggests it when the median tempo
    ratio is beyond 1.5x either way).
    """
    if nominal_tempo not in NOMINAL_TEMPI:
        raise ConfigError(f"nominal_tempo must be one of {', '.join(NOMINAL_TEMPI)}, got {nominal_tempo!r}")
    name = _synth_name(synth)
    memo = (*_file_stamp(score), *_file_stamp(performance), *_file_stamp(alignment), float(expressiveness),
            int(seed), name, nominal_tempo) if name and cache is None else None
    if memo in _LOADED:
        _LOADED.move_to_end(memo)
        return _LOADED[memo]
    piece = _load_piece(score, performance, alignment, expressiveness, seed, synth, nominal_tempo, cache)
    if memo is not None:
        _LOADED[memo] = piece
        while len(_LOADED) > _LOADED_SIZE:
            _LOADED.popitem(last=False)
    return piece


def _load_piece(score, performance, alignment, expressiveness, seed, synth, nominal_tempo, cache) -> Piece:
    score_path = Path(score)
    own_match = score_path.suffix.lower() in MATCH_SUFFIXES
    if own_match and alignment is not None:
        raise ConfigError(f"{score_path} is a match file: it is its own alignment; give no other alignment")
    if performance is None and alignment is None and not own_match:
        return prepare_piece(load_user_score(score), expressiveness=expressiveness, seed=seed, synth=synth,
                             cache=cache)
    if alignment is None and not own_match:
        raise ConfigError(f"performance {performance} needs an alignment (CSV performance_time,score_time, a "
                          f"beat-annotation .txt or a match file) to serve as ground truth")
    if alignment is not None and Path(alignment).suffix.lower() not in ALIGNMENT_SUFFIXES:
        raise ConfigError(f"alignment {alignment}: unsupported format {Path(alignment).suffix!r}; use one of "
                          f"{sorted(ALIGNMENT_SUFFIXES)}")
    alignment_is_match = alignment is not None and Path(alignment).suffix.lower() in MATCH_SUFFIXES
    if performance is None and not own_match and not alignment_is_match:
        raise ConfigError("an alignment was given without a performance; give both, or neither to render one "
                          "(a match file holds its own performance)")
    played: Performance | None = None
    if own_match:
        match = load_match(score_path)
        sc, points, played = match.score.score, match.alignment, match.performance
    else:
        read = _read_score(score_path)
        sc = read.score if isinstance(read, ScoreWithIds) else read
        suffix = Path(alignment).suffix.lower()
        if alignment_is_match:
            if not isinstance(read, ScoreWithIds):
                raise ConfigError(f"match file {alignment} names score notes by id: give the MusicXML it was made "
                                  f"from as the score, or the match file alone")
            match = load_match(alignment, score=read)
            points, played = match.alignment, match.performance
        elif suffix in BEAT_ANNOTATION_SUFFIXES:
            points = load_beat_annotations(alignment)
        else:
            csv_alignment = load_alignment_csv(alignment)
            points = BeatAlignment(csv_alignment.performance_time,
                                   sc.tempo.seconds_to_beats(csv_alignment.score_time))
    perf_path = Path(performance) if performance is not None else None
    # named after the performance (several performances of one score are several pieces)
    named_by = perf_path or (Path(alignment) if alignment_is_match else score_path)
    piece_id = named_by.stem
    sc = _titled(sc, score_path.stem)
    sc = _with_nominal_tempo(sc, points, nominal_tempo, piece_id)
    align = points.to_alignment(sc.tempo)
    synth_obj = make_synth(synth)
    if perf_path is not None and perf_path.suffix.lower() in AUDIO_SUFFIXES:
        from lmm_envs.audio.wav import read_audio

        played = None
        spec = spectrogram(read_audio(perf_path, synth_obj.sample_rate), synth_obj.sample_rate)
    else:
        if perf_path is not None:
            played = load_performance_midi(perf_path)
        spec = performance_spectrogram(played, synth_obj, cache)
    _check_alignment_within(align, spec.shape[1] / FPS, alignment or score)
    return Piece(
        id=piece_id, score=sc, performance=played, alignment=align, spectrogram=spec, synth=synth_obj.name,
        meta={"performance": str(perf_path or score_path), "alignment": str(alignment or score_path),
              "nominal_tempo": nominal_tempo},
    )


def _with_nominal_tempo(score: Score, points: BeatAlignment, nominal_tempo: str, name: str) -> Score:
    """The score with the performance's own tempo (``nominal_tempo="performance"``), or as it is with a warning
    when the performer plays far from its marked tempo."""
    if nominal_tempo == "performance":
        bpm = float(np.clip(points.performance_bpm(), MIN_BPM, MAX_BPM))
        return replace(score, tempo=TempoMap.constant(bpm))
    ratio = points.median_tempo_ratio(score.tempo)
    if not 1.0 / TEMPO_WARNING_RATIO <= ratio <= TEMPO_WARNING_RATIO and (name, round(ratio, 2)) not in _WARNED:
        _WARNED.add((name, round(ratio, 2)))  # once per process (warnings' own registry forgets after filters change)
        warnings.warn(TempoWarning(f"piece {name}: the performance plays at {ratio:.2f}x the score's nominal tempo "
                                   f"(median); nominal_tempo='performance' (--nominal-tempo performance) uses its own "
                                   f"tempo instead", name, ratio), stacklevel=3)
    return score


def performance_spectrogram(performance: Performance, synth: Synth, cache: Cache | None = None) -> np.ndarray:
    """The spectrogram of a performance played by ``synth`` (cached by the performance's content)."""
    key = make_key("performance", performance=performance.content_hash(), synth=synth.cache_key(),
                   features=FEATURE_VERSION)

    def build() -> dict[str, np.ndarray]:
        return {"spectrogram": spectrogram(synth.render(performance), synth.sample_rate)}

    return (cache or default_cache()).get_or_create(key, build, required=("spectrogram",))["spectrogram"]


ALIGNMENT_OVERRUN = 1.0  # s an alignment may reach past the performance's end (annotation rounding)


def _check_alignment_within(alignment: Alignment, duration: float, path) -> None:
    """Refuse an alignment that does not lie in the performance's own seconds (it would score nothing)."""
    first, last = float(alignment.performance_time[0]), float(alignment.performance_time[-1])
    if first >= duration or last > duration + ALIGNMENT_OVERRUN:
        raise AlignmentError(f"alignment {path} spans performance times {first:g}..{last:g} s but the performance "
                             f"lasts {duration:.2f} s; performance_time must be seconds of this performance")


def load_piece_list(path: str | Path, nominal_tempo: str | None = None) -> list[dict[str, str | None]]:
    """The pieces a piece list CSV or a dataset folder names, as ``{score, performance, alignment, nominal_tempo}``.

    A piece list CSV has the header ``score,performance,alignment`` (paths relative to the CSV; an optional
    ``nominal_tempo`` column). A folder is read by :func:`lmm_envs.datasets.find_pieces`. ``nominal_tempo``, when
    given, applies to every piece.
    """
    from lmm_envs.datasets import find_pieces

    p = Path(path)
    rows = find_pieces(p) if p.is_dir() else _read_piece_list(p)
    if nominal_tempo is not None:
        if nominal_tempo not in NOMINAL_TEMPI:
            raise ConfigError(f"nominal_tempo must be one of {', '.join(NOMINAL_TEMPI)}, got {nominal_tempo!r}")
        rows = [{**r, "nominal_tempo": nominal_tempo} for r in rows]
    return rows


def _read_piece_list(p: Path) -> list[dict[str, str | None]]:
    import csv
    import io

    if not p.is_file():
        raise ConfigError(f"piece list not found: {p}; give a piece list CSV or a dataset folder")
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
            entry: dict[str, str | None] = {}
            for col in ("score", "performance", "alignment"):
                value = (row.get(col) or "").strip()
                entry[col] = str((p.parent / value).resolve()) if value else None
            if entry["score"] is None:
                raise ConfigError(f"piece list {p} has a row without a score")
            tempo = (row.get("nominal_tempo") or "").strip()
            if tempo:
                if tempo not in NOMINAL_TEMPI:
                    raise ConfigError(f"piece list {p}: nominal_tempo must be one of {', '.join(NOMINAL_TEMPI)}, "
                                      f"got {tempo!r}")
                entry["nominal_tempo"] = tempo
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
        count_extra_built()
        audio = synth_obj.render(piece.performance.select_parts(parts), duration=piece.duration)
        spec = spectrogram(audio, synth_obj.sample_rate)
        out = np.zeros((spec.shape[0], piece.n_frames), dtype=np.float32)
        n = min(piece.n_frames, spec.shape[1])
        out[:, :n] = spec[:, :n]
        return {"spectrogram": out}

    return (cache or default_cache()).get_or_create(key, build, required=("spectrogram",))["spectrogram"]
