"""Seeded expressive rendering: a :class:`Score` becomes a :class:`Performance` plus its exact :class:`Alignment`.

The model works on a fine beat grid and builds a smooth log-tempo curve from
- a global tempo factor,
- slow tempo drift (a few random sinusoids over beats),
- phrase-final ritardandi (phrases end at fermatas, else every four bars, and at the end), and
- fermatas (the held note is slowed down, with smooth edges).
Integrating the curve maps score beats to performance seconds: that map *is* the ground-truth alignment.
Notes then get onset asynchrony between voices (melody lead plus jitter), articulation and dynamics
(phrase arcs, downbeat accents, noise). ``expressiveness=0`` is deadpan: nominal timing and the score's
velocities. Larger values scale every deviation (1.0 is the default difficulty).

Two styles set what ``expressiveness=1`` means. ``"vienna"`` (the default) is calibrated on the 88 human
performances of the Vienna 4x22 corpus: at 1.0 the spread and beat-to-beat change of the local tempo, the
onset asynchrony within chords and the spread of velocities match their medians there (see
:mod:`lmm_envs.music.expressive_stats` and the README's calibration figure). ``"gentle"`` is the earlier model,
about half as expressive on every count, kept so that earlier settings stay reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmm_envs.errors import ConfigError
from lmm_envs.music.score import Alignment, Performance, Score

GRID_PER_BEAT = 8
ARTICULATION = 0.95  # share of the notated duration that sounds, deadpan


@dataclass(frozen=True)
class ExpressiveStyle:
    """Gains on each part of the model at ``expressiveness=1`` (``beat_jitter``: std of a per-beat log tempo)."""

    tempo: float
    beat_jitter: float
    asynchrony: float
    dynamics: float
    chords_within_parts: bool  # asynchrony between notes of one part's chords too (a pianist's hands)


# Measured with ``python -m lmm_envs.music.expressive_stats vienna4x22`` (median over the 88
# performances): tempo spread 0.254, tempo change 0.266 (log2 per beat), asynchrony 27.6 ms, velocity spread 14.9.
EXPRESSIVE_STYLES = {
    "vienna": ExpressiveStyle(tempo=1.94, beat_jitter=0.086, asynchrony=2.7, dynamics=1.8, chords_within_parts=True),
    "gentle": ExpressiveStyle(tempo=1.0, beat_jitter=0.0, asynchrony=1.0, dynamics=1.0, chords_within_parts=False),
}
DEFAULT_STYLE = "vienna"


def check_style(style) -> ExpressiveStyle:
    """The :class:`ExpressiveStyle` named ``style`` (a ConfigError naming the styles otherwise)."""
    if not isinstance(style, str) or style not in EXPRESSIVE_STYLES:
        raise ConfigError(f"expressive_style must be one of {', '.join(EXPRESSIVE_STYLES)}, got {style!r:.40}")
    return EXPRESSIVE_STYLES[style]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bump(grid: np.ndarray, start: float, end: float, edge: float) -> np.ndarray:
    """1 on [start, end], 0 away from it, with smooth edges of width ``edge`` on both sides."""
    return _smoothstep((grid - (start - edge)) / edge) * _smoothstep(((end + edge) - grid) / edge)


def phrase_ends(score: Score) -> np.ndarray:
    """Beats where phrases end: fermatas if the score has them, else every fourth barline; always the end."""
    if score.fermatas.size:
        ends = score.fermatas
    elif score.measures.size > 4:
        ends = score.measures[4::4]
    else:
        ends = np.zeros(0)
    return np.unique(np.concatenate([ends, [score.end_beat]]))


def log_tempo_curve(score: Score, grid: np.ndarray, expressiveness: float, rng: np.random.Generator,
                    style: ExpressiveStyle = EXPRESSIVE_STYLES["gentle"]) -> np.ndarray:
    """Log of the performed/nominal tempo ratio at each grid beat (positive: faster than written)."""
    e = expressiveness * style.tempo
    curve = np.full(grid.shape, rng.normal(0.0, 0.08) * e)
    for _ in range(4):  # slow drift
        period = rng.uniform(8.0, 32.0)
        curve += e * rng.uniform(0.01, 0.05) * np.sin(2 * np.pi * grid / period + rng.uniform(0, 2 * np.pi))
    for end in phrase_ends(score):
        depth = e * rng.uniform(0.12, 0.3)
        ramp = _smoothstep((grid - (end - 2.0)) / 2.0) * _smoothstep((end + 0.75 - grid) / 0.75)
        curve -= depth * ramp
    for f in score.fermatas:
        held = score.duration[score.onset == f]
        length = float(held.max()) if held.size else 1.0
        curve -= np.log1p(e * rng.uniform(0.6, 1.2)) * _bump(grid, f, f + length * 0.8, 1.0)
    if style.beat_jitter > 0:  # beat-to-beat unevenness: one tempo per beat
        per_beat = rng.normal(0.0, style.beat_jitter * expressiveness, int(np.floor(grid[-1])) + 1)
        curve += per_beat[np.floor(grid).astype(np.int64)]
    return curve


MAX_EXPRESSIVENESS = 4.0  # beyond it tempo curves overflow (16 already stretches a piece threefold)


def check_expressiveness(expressiveness) -> float:
    """``expressiveness`` as a float if it is a number in 0..:data:`MAX_EXPRESSIVENESS`, else a ConfigError."""
    ok = isinstance(expressiveness, (int, float, np.integer, np.floating)) and not isinstance(expressiveness, bool)
    if not ok or not np.isfinite(expressiveness) or not 0 <= expressiveness <= MAX_EXPRESSIVENESS:
        raise ConfigError(f"expressiveness must be a number from 0 (deadpan) to {MAX_EXPRESSIVENESS:g}, "
                          f"got {expressiveness!r:.40}")
    return float(expressiveness)


def render_performance(
    score: Score, expressiveness: float = 1.0, seed: int | np.random.Generator | None = 0, style: str = DEFAULT_STYLE,
) -> tuple[Performance, Alignment]:
    """Render ``score`` expressively in ``style``; the same seed gives the same performance, bit for bit."""
    check_expressiveness(expressiveness)
    look = check_style(style)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    e = float(expressiveness)
    end_beat = score.end_beat + 1.0
    grid = np.arange(0.0, end_beat + 1.0 / GRID_PER_BEAT, 1.0 / GRID_PER_BEAT)
    nominal = score.tempo.beats_to_seconds(grid)
    step = np.diff(nominal)
    log_tempo = log_tempo_curve(score, grid, e, rng, look) if e > 0 else np.zeros_like(grid)
    mid = 0.5 * (log_tempo[1:] + log_tempo[:-1])
    perf_grid = np.concatenate([[0.0], np.cumsum(step * np.exp(-mid))])
    alignment = Alignment(perf_grid, nominal)

    beats_to_perf = lambda b: np.interp(b, grid, perf_grid)  # noqa: E731
    onset = beats_to_perf(score.onset)
    articulation = ARTICULATION - e * rng.uniform(0.0, 0.1, score.n_notes) if e > 0 else ARTICULATION
    offset = beats_to_perf(score.onset + score.duration * articulation)
    velocity = score.velocity.astype(np.float64)
    if e > 0:
        top_part = score.part == 0
        if score.n_parts > 1 or (look.chords_within_parts and np.unique(score.onset).size < score.n_notes):
            a = e * look.asynchrony
            lead = top_part if score.n_parts > 1 else _top_of_chord(score)
            asynchrony = rng.normal(0.0, 0.012 * a, score.n_notes) - 0.008 * a * lead
            onset = onset + np.clip(asynchrony, -0.04 * a, 0.04 * a)
        velocity = _dynamics(score, rng, e * look.dynamics, top_part)
    onset = np.maximum(onset, 0.0)
    offset = np.maximum(offset, onset + 0.02)
    return Performance(score.pitch, onset, offset, velocity, score.part), alignment


def _top_of_chord(score: Score) -> np.ndarray:
    """The highest note of each chord (the melody a pianist brings out a little early)."""
    top = np.zeros(score.n_notes, dtype=bool)
    for onset in np.unique(score.onset):
        idx = np.flatnonzero(score.onset == onset)
        top[idx[np.argmax(score.pitch[idx])]] = True
    return top


def _dynamics(score: Score, rng: np.random.Generator, e: float, top_part: np.ndarray) -> np.ndarray:
    ends = phrase_ends(score)
    idx = np.searchsorted(ends, score.onset, side="left")
    starts = np.concatenate([[0.0], ends])[idx]
    stops = ends[np.minimum(idx, ends.size - 1)]
    position = (score.onset - starts) / np.maximum(stops - starts, 1e-6)
    arc = np.sin(np.pi * np.clip(position, 0.0, 1.0))
    on_barline = np.isin(score.onset, score.measures)
    phrase_level = rng.normal(0.0, 6.0 * e, ends.size + 1)[idx]
    velocity = 64.0 + e * (14.0 * arc + 6.0 * on_barline + 6.0 * top_part) + phrase_level
    return np.clip(velocity + rng.normal(0.0, 4.0 * e, score.n_notes), 20, 120)
