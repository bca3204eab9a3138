"""What every lmm task shares: choosing pieces and performances, the frame clock, observation windows, seeding,
action checking and the episode guard."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lmm_envs.audio.features import FPS, N_BINS
from lmm_envs.audio.synth import Synth, make_synth
from lmm_envs.errors import ConfigError, InvalidActionError, TempoWarning, UnpreparedWarning
from lmm_envs.music import corpus
from lmm_envs.music.expressive import DEFAULT_STYLE, check_expressiveness, check_style
from lmm_envs.music.score import Score
from lmm_envs.pieces import (
    PERFORMANCES_PER_PIECE,
    SCORE_FILE_SUFFIXES,
    Piece,
    extras_built,
    load_piece,
    load_piece_list,
    load_user_score,
    performance_seed,
    prepare_piece,
    renderings_built,
)

PITCH_LOW, N_PITCHES = 21, 88  # piano range A0..C8
AUDIO_WINDOW = 40  # frames (2 s)
SCORE_WINDOW = 80  # score frames (4 s)
SCORE_LOOKBEHIND = 20  # score frames shown before the agent's position
ONSET_VALUE, SUSTAIN_VALUE = 255, 128  # score roll pixels
AUDIO_SCALE = 40.0  # spectrogram value (log1p(100 * amplitude)) -> uint8 pixel; 6.4 and above saturate


def _resolve_all(resolve, items) -> list:
    """Resolve a list of pieces; several performances far from their score's tempo make one warning, not many."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TempoWarning)
        sources = [resolve(item) for item in items]
    far = [w.message for w in caught if isinstance(w.message, TempoWarning)]
    for w in caught:
        if not isinstance(w.message, TempoWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if len(far) == 1:
        warnings.warn(far[0], stacklevel=3)
    elif far:
        ratios = [m.ratio for m in far]
        warnings.warn(TempoWarning(
            f"{len(far)} of {len(sources)} pieces are played far from their score's nominal tempo (median "
            f"{min(ratios):.2f}x to {max(ratios):.2f}x, e.g. {far[0].piece} at {far[0].ratio:.2f}x); "
            f"nominal_tempo='performance' (--nominal-tempo performance) uses each performance's own tempo",
            far[0].piece, far[0].ratio), stacklevel=3)
    return sources


def audio_pixels(spec: np.ndarray) -> np.ndarray:
    """Spectrogram values (``log1p(100 * amplitude)``) -> the uint8 pixels of every env's audio windows."""
    scaled = np.rint(spec * AUDIO_SCALE)
    return np.minimum(np.maximum(scaled, 0, out=scaled), 255, out=scaled).astype(np.uint8)  # a clip, in ufuncs


def score_roll(score: Score, fps: int = FPS) -> np.ndarray:
    """Piano roll of the score on its nominal timeline: (88, frames) uint8, 255 at onsets, 128 while sounding."""
    onsets = score.onset_seconds
    offsets = score.offset_seconds
    n = int(math.ceil(score.end_seconds * fps)) + 1
    rows = np.clip(score.pitch.astype(np.int64) - PITCH_LOW, 0, N_PITCHES - 1)
    start = np.round(onsets * fps).astype(np.int64)
    stop = np.maximum(np.round(offsets * fps).astype(np.int64), start + 1)
    # a note sounds from its start to its stop: +1 at the start and -1 at the stop of its row, summed along time
    size = N_PITCHES * (n + 1)
    edges = np.bincount(rows * (n + 1) + start, minlength=size) - np.bincount(rows * (n + 1) + np.minimum(stop, n),
                                                                             minlength=size)
    sounding = np.cumsum(edges.reshape(N_PITCHES, n + 1)[:, :n], axis=1) > 0
    roll = sounding.astype(np.uint8) * np.uint8(SUSTAIN_VALUE)
    roll[rows, start] = ONSET_VALUE
    return roll


_UNPREPARED_TOLD = [False]  # the unprepared-rendering hint is given once per process


def derived(owner: Piece | Score, name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """An array computed once from a piece, or from a score (shared by all renderings of it), and kept as long as
    the piece or score is (read-only: shared by episodes)."""
    table = owner.__dict__.setdefault("_derived", {})  # beside the frozen fields, as Score keeps its digest
    value = table.get(name)
    if value is None:
        value = build()
        value.setflags(write=False)
        table[name] = value
    return value


class LMMEnv(gym.Env):
    """Base of the lmm tasks. Subclasses define spaces, ``_start`` (after a piece is chosen) and ``_advance``.

    Arguments shared by every task: ``split`` (``train``/``val``/``test``), ``pieces`` (a list of bundled ids,
    score paths, ``{"score","performance","alignment"}`` dicts, :class:`Piece` or :class:`Score` objects, or a piece
    list CSV or dataset folder path; replaces ``split``), ``synth`` (``harmonic``/``fluidsynth`` or a Synth),
    ``expressiveness`` (>= 0, default 1.0), ``expressive_style`` (``vienna``, calibrated on human performances, or
    the earlier ``gentle``), ``paired_budget`` (train on only the first K pieces of the paired pool),
    ``performances_per_piece`` (how many seeded renderings of each piece episodes draw from) and ``render_mode``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __new__(cls, *args: Any, **options: Any):
        # every option of every task is checked by type here, before any __init__ reads one
        from lmm_envs.envs.options import check_options

        check_options(cls, options)
        return super().__new__(cls)

    def __init__(
        self,
        split: str = "train",
        pieces: list | tuple | str | Path | None = None,
        synth: str | Synth = "harmonic",
        expressiveness: float = 1.0,
        paired_budget: int | None = None,
        performances_per_piece: int = PERFORMANCES_PER_PIECE,
        render_mode: str | None = None,
        expressive_style: str = DEFAULT_STYLE,
    ):
        expressiveness = check_expressiveness(expressiveness)  # render_mode and the types: checked in __new__
        check_style(expressive_style)
        self.expressive_style = expressive_style
        if not isinstance(performances_per_piece, int) or performances_per_piece < 1:
            raise ConfigError(f"performances_per_piece must be a positive integer, got {performances_per_piece!r}")
        if split not in corpus.SPLITS:
            raise ConfigError(f"split must be one of {', '.join(corpus.SPLITS)}, got {split!r}")
        self.render_mode = render_mode
        self.expressiveness = expressiveness
        self.performances_per_piece = performances_per_piece
        self.synth = make_synth(synth)
        self.split = split
        self.paired_budget = paired_budget
        self.sources = self._resolve_sources(split, pieces, paired_budget)
        self.piece: Piece | None = None
        self._done = True
        self._started = False

    # --- configuration ------------------------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> set[str]:
        from lmm_envs.envs.options import option_types

        return set(option_types(cls))

    def _resolve_sources(self, split: str, pieces, paired_budget) -> list:
        if pieces is not None:
            if paired_budget is not None:
                raise ConfigError("give either pieces=[...] or paired_budget, not both")
            if isinstance(pieces, (str, Path)):
                pieces = load_piece_list(pieces)  # a piece list CSV or a dataset folder
            if not isinstance(pieces, (list, tuple)) or not pieces:
                raise ConfigError("pieces must be a non-empty list (or a piece list CSV path)")
            sources = _resolve_all(self._resolve_one, pieces)
        elif paired_budget is not None:
            if split != "train":
                raise ConfigError("paired_budget selects training pieces; use it with split='train'")
            sources = corpus.paired_ids(paired_budget)
        else:
            sources = corpus.piece_ids(split=split)
        suitable = [s for s in sources if self._accepts(s)]
        if not suitable:
            raise ConfigError(f"no piece suits {type(self).__name__} in this selection: "
                              f"{self._why_unsuited(sources)}")
        return suitable

    def _resolve_one(self, item):
        if isinstance(item, (Piece, Score)):
            return item
        if isinstance(item, dict):
            if "score" not in item:
                raise ConfigError("a piece given as a dict needs a 'score' path")
            own_match = Path(str(item["score"])).suffix.lower() == ".match"
            if item.get("performance") is None and item.get("alignment") is None and not own_match:
                return load_user_score(item["score"])
            return load_piece(item["score"], item.get("performance"), item.get("alignment"), synth=self.synth,
                              nominal_tempo=item.get("nominal_tempo") or "score")
        if isinstance(item, (str, Path)):
            text = str(item)
            if Path(text).suffix.lower() == ".match":
                return load_piece(text, synth=self.synth)
            if Path(text).suffix.lower() in SCORE_FILE_SUFFIXES or Path(text).exists():
                return load_user_score(text)
            corpus.piece_info(text)  # an unknown id raises UnknownPieceError with a hint
            return text
        raise ConfigError(f"cannot use {type(item).__name__} as a piece; give an id, a path, a dict or a Piece")

    def _accepts(self, source) -> bool:
        """Subclasses narrow the piece set (e.g. multi-part pieces only)."""
        return True

    def _why_unsuited(self, sources: list) -> str:
        """Why none of ``sources`` is accepted (for the error message); subclasses that narrow say more."""
        return "choose other pieces"

    # --- episodes -----------------------------------------------------------------------------------------
    def _choose_piece(self, options: dict | None) -> Piece:
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"reset options must be a dict (e.g. {{'piece': 0, 'variant': 1}}) or None, "
                              f"got {type(options).__name__}")
        options = dict(options or {})
        which = options.pop("piece", None)
        variant = options.pop("variant", None)
        if options:
            raise ConfigError(f"unknown reset option(s) {', '.join(map(str, options))}; known: piece, variant")
        if which is None:
            index = int(self.np_random.integers(len(self.sources)))
        elif isinstance(which, (int, np.integer)) and not isinstance(which, bool):
            if not 0 <= int(which) < len(self.sources):
                raise ConfigError(f"reset option piece: index {which} is outside 0..{len(self.sources) - 1}")
            index = int(which)
        elif isinstance(which, str):
            names = [s if isinstance(s, str) else getattr(s, "id", getattr(s, "title", "")) for s in self.sources]
            if which not in names:
                raise ConfigError(f"reset option piece: {which!r:.80} is not among this env's {len(names)} pieces")
            index = names.index(which)
        else:
            raise ConfigError(f"reset option piece must be an index or a piece id, got {which!r:.80}")
        if variant is None:
            variant = int(self.np_random.integers(self.performances_per_piece))
        elif not isinstance(variant, (int, np.integer)) or isinstance(variant, bool) \
                or not 0 <= int(variant) < self.performances_per_piece:
            raise ConfigError(f"reset option variant must be an integer in 0..{self.performances_per_piece - 1} "
                              f"(performances_per_piece), got {variant!r:.80}")
        source = self.sources[index]
        self._drawn = None
        if isinstance(source, Piece):
            return source
        piece_id = source if isinstance(source, str) else (source.title or "score")
        built = renderings_built()
        piece = prepare_piece(source, self.expressiveness, performance_seed(piece_id, int(variant)), self.synth,
                              style=self.expressive_style)
        if isinstance(source, str):
            self._drawn = (piece_id, int(variant))
            if renderings_built() > built:
                self._tell_unprepared(piece_id, f"rendering {variant} of {piece_id}")
        return piece

    def _extras_prepared(self) -> bool:
        """Whether ``data prepare --playing-targets`` prepares what this env, with its options, reads at a reset
        besides the rendering (the playing envs say yes for their default options)."""
        return False

    def _tell_unprepared(self, piece_id: str, what: str) -> None:
        """Once per process: ``what`` of the bundled piece ``piece_id`` was built at reset (not found in the cache),
        with the one command that prepares what this env draws."""
        if _UNPREPARED_TOLD[0]:
            return
        _UNPREPARED_TOLD[0] = True
        options = []
        if self.synth.name != "harmonic":
            options.append(f"--synth {self.synth.name}")
        if self.expressiveness != 1.0:
            options.append(f"--expressiveness {self.expressiveness:g}")
        if self.expressive_style != DEFAULT_STYLE:
            options.append(f"--style {self.expressive_style}")
        if self.performances_per_piece != PERFORMANCES_PER_PIECE:
            options.append(f"--variants {self.performances_per_piece}")
        if self._extras_prepared():
            options.append("--playing-targets")
        where = f"--split {corpus.piece_info(piece_id).split}"  # the split that holds it, whatever chose it
        warnings.warn(UnpreparedWarning(
            f"{what} was not prepared, so it was built at reset (tens of ms each, far more than a step); prepare "
            f"everything this env draws once with: lmm-envs data prepare {' '.join([where, *options])}"),
            stacklevel=4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.piece = self._choose_piece(options)
        self._done = False
        self._started = True
        built = extras_built()
        out = self._start(self.piece)
        if self._drawn is not None and extras_built() > built and self._extras_prepared():
            piece_id, variant = self._drawn
            self._tell_unprepared(piece_id, f"what {type(self).__name__} reads of rendering {variant} of {piece_id} "
                                            "besides its audio")
        return out

    def step(self, action):
        if not self._started:
            raise InvalidActionError("call reset() before step()")
        if self._done:
            raise InvalidActionError("the episode is over (terminated or truncated); call reset() before step()")
        action = self._check_action(action)
        obs, reward, terminated, truncated, info = self._advance(action)
        self._done = bool(terminated or truncated)
        if terminated:  # every task reports its metrics at the end (a truncating wrapper cannot know the end)
            info["episode_metrics"] = self.episode_metrics()
        return obs, reward, terminated, truncated, info

    def _check_action(self, action):
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            if isinstance(action, (int, np.integer)) and not isinstance(action, bool) \
                    and space.start <= action < space.start + space.n:
                return int(action)  # the common case, without the general checks below
            try:
                value = int(action)
            except (TypeError, ValueError, OverflowError):
                raise InvalidActionError(f"action {action!r} is not an integer of {space}") from None
            if value != np.asarray(action).item() or not space.contains(value):
                raise InvalidActionError(f"action {action!r} is outside {space}")
            return value
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidActionError(f"action {action!r} is not numeric; expected an element of {space}") from None
        if isinstance(space, gym.spaces.Box):
            if arr.shape != space.shape:
                arr = arr.reshape(space.shape) if arr.size == math.prod(space.shape) else arr
            if arr.shape != space.shape or not np.all(np.isfinite(arr)):
                raise InvalidActionError(f"action {action!r} is not a finite array of shape {space.shape}")
            if np.any(arr < space.low - 1e-6) or np.any(arr > space.high + 1e-6):
                raise InvalidActionError(f"action {action!r} is outside [{space.low.min()}, {space.high.max()}]")
            return arr.astype(np.float32)
        if isinstance(space, gym.spaces.MultiDiscrete):
            if arr.shape != space.shape or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) \
                    or np.any(arr < 0) or np.any(arr >= space.nvec):
                raise InvalidActionError(f"action must be integers 0 <= a < {space.nvec.tolist()}, got {action!r}")
            return arr.astype(np.int64)
        if isinstance(space, gym.spaces.MultiBinary):
            if arr.shape != space.shape or not np.all((arr == 0) | (arr == 1)):
                raise InvalidActionError(f"action must be 0/1 of shape {space.shape}, got {action!r}")
            return arr.astype(np.int8)
        if not space.contains(action):
            raise InvalidActionError(f"action {action!r} is outside {space}")
        return action

    # --- subclass hooks -----------------------------------------------------------------------------------
    def _start(self, piece: Piece):  # pragma: no cover - abstract
        raise NotImplementedError

    def _advance(self, action):  # pragma: no cover - abstract
        raise NotImplementedError

    def episode_metrics(self) -> dict[str, float]:  # pragma: no cover - abstract
        """The task's metrics of the episode so far (put in ``info["episode_metrics"]`` when it terminates)."""
        raise NotImplementedError

    # --- shared observation helpers -----------------------------------------------------------------------
    # Observation windows are channel-first uint8 images (1, rows, frames): SB3 gives them a CNN as they are
    # and its env checker accepts them without warnings (2-D float windows draw a warning).
    @staticmethod
    def audio_space() -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, shape=(1, N_BINS, AUDIO_WINDOW), dtype=np.uint8)

    @staticmethod
    def score_space() -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, shape=(1, N_PITCHES, SCORE_WINDOW), dtype=np.uint8)

    @staticmethod
    def pad_audio(spec: np.ndarray) -> np.ndarray:
        """Quantized spectrogram with AUDIO_WINDOW - 1 silent frames in front: frame f's window is [:, f:f+40]."""
        out = np.zeros((1, spec.shape[0], spec.shape[1] + AUDIO_WINDOW - 1), dtype=np.uint8)
        out[0, :, AUDIO_WINDOW - 1:] = audio_pixels(spec)
        return out

    @staticmethod
    def pad_roll(roll: np.ndarray) -> np.ndarray:
        """Score roll padded so that the window at score frame c is ``[:, :, c:c+SCORE_WINDOW]``."""
        after = SCORE_WINDOW - SCORE_LOOKBEHIND
        return np.pad(roll, ((0, 0), (SCORE_LOOKBEHIND, after)))[None]
