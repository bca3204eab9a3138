"""The evaluation protocol: for each env id, the fixed test episodes, the metric that ranks agents, and the tracks.

An episode of the protocol is a (piece, rendering, expressiveness) triple: every test piece the env accepts, the
renderings ``VARIANTS`` of each (seeded from the piece id, see :func:`lmm_envs.pieces.performance_seed`) and the
expressiveness levels of the protocol. Agents are ranked by the protocol's main metric, normalised so that the
random agent scores 0 and the oracle 1 on the same episodes: ``(agent - random) / (oracle - random)``.

Tracks bound what an agent may have used: ``paired_budget`` (8, 64 or all paired pieces) and ``env_steps``
(100k or 1M environment steps of training). Non-learning baselines use neither and are shown with every track.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lmm_envs.errors import ConfigError

# Version 2: performances rendered in the "vienna" expressive style (calibrated on real performances; every
# env); ScoreFollowing episodes run to the performance's end and report being lost (lost_share, tracked_to_end).
PROTOCOL_VERSION = 2
VARIANTS = (0, 1)  # renderings per test piece
PAIRED_BUDGETS = ("8", "64", "all")
ENV_STEPS = ("100k", "1M")
TRACKS = tuple(f"{k}/{s}" for k in PAIRED_BUDGETS for s in ENV_STEPS)
BASELINE_TRACK = "baseline"  # no paired data, no training: shown with every track
CUSTOM_TRACK = "custom"  # a user's own pieces: outside the leaderboard tracks


SUBSETS = ("spread", "first")  # how a quicker, off-leaderboard evaluation picks its N pieces


def check_subset(how: str) -> None:
    """Refuse a way of choosing a subset that :func:`subset_indices` does not know (one :class:`ConfigError`)."""
    if how not in SUBSETS:
        raise ConfigError(f"subset must be one of {', '.join(SUBSETS)} (how --limit picks its pieces), got {how!r}")


def subset_indices(count: int, limit: int | None, how: str = "spread") -> list[int]:
    """Which of ``count`` pieces (in the split's order) an evaluation of ``limit`` pieces runs. ``"spread"`` (the
    default) takes them evenly over the whole list, first and last included, so that a subset keeps the split's
    mix of collections (the splits list the Bach chorales first: the test split's first 41 pieces are all chorales,
    the rest folk tunes); ``"first"`` takes the first ``limit`` (how subsets were chosen before, kept to reproduce
    earlier figures). ``limit`` None or 0, or at least ``count``: every piece."""
    check_subset(how)
    if not limit or limit >= count:
        return list(range(count))
    if how == "first":
        return list(range(limit))
    return [int(i) for i in np.round(np.linspace(0, count - 1, limit))]  # steps >= 1 apart: all distinct


def within(track: str, bound: str) -> bool:
    """Whether an agent of ``track`` also keeps within the bounds of track ``bound`` (tracks are upper bounds: an
    agent that used 8 paired pieces and 100k steps used at most 64 pieces and at most 1M steps)."""
    if track not in TRACKS or bound not in TRACKS:
        return False
    pairs, steps = track.split("/")
    bound_pairs, bound_steps = bound.split("/")
    return (PAIRED_BUDGETS.index(pairs) <= PAIRED_BUDGETS.index(bound_pairs)
            and ENV_STEPS.index(steps) <= ENV_STEPS.index(bound_steps))


@dataclass(frozen=True)
class Protocol:
    """What an evaluation of ``env_id`` runs and how it is scored."""

    env_id: str
    main_metric: str
    metrics: tuple[str, ...]
    env_kwargs: dict = field(default_factory=dict)
    expressiveness: tuple[float, ...] = (1.0,)
    variants: tuple[int, ...] = VARIANTS
    split: str = "test"
    version: int = PROTOCOL_VERSION

    def describe(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


PROTOCOLS = {
    # episodes run to the performance's end (a lost follower may find its place again); being lost is a metric,
    # measured in performance seconds
    "lmm/ScoreFollowing-v0": Protocol(
        "lmm/ScoreFollowing-v0", "within_100ms",
        ("within_100ms", "within_300ms", "within_1000ms", "tracking_ratio", "tracked_to_end", "lost_share",
         "mean_abs_error_s"), env_kwargs={"terminate_on_lost": False}),
    "lmm/Accompaniment-v0": Protocol(
        "lmm/Accompaniment-v0", "within_100ms",
        ("within_100ms", "within_50ms", "mean_abs_asynchrony_ms", "missed_share", "extra")),
    "lmm/SightReading-v0": Protocol(
        "lmm/SightReading-v0", "note_f1", ("note_f1", "note_precision", "note_recall", "frame_f1",
                                           "spectral_distance"), env_kwargs={"polyphony": "mono"}),
    "lmm/PlayByEar-v0": Protocol(
        "lmm/PlayByEar-v0", "note_f1", ("note_f1", "note_precision", "note_recall", "frame_f1",
                                        "spectral_distance"), env_kwargs={"polyphony": "mono"}),
}


def get_protocol(env_id: str) -> Protocol:
    """The protocol of a registered id (an unknown one is a :class:`ConfigError` listing the known ones)."""
    try:
        return PROTOCOLS[env_id]
    except KeyError:
        raise ConfigError(f"no evaluation protocol for {env_id!r}; protocols exist for "
                          f"{', '.join(sorted(PROTOCOLS))}") from None


def check_track(track: str) -> str:
    if track not in (*TRACKS, BASELINE_TRACK):
        raise ConfigError(f"unknown track {track!r}; tracks are {', '.join(TRACKS)} (paired budget/env steps) "
                          f"and {BASELINE_TRACK!r} for agents that use neither")
    return track


def normalised(value, random, oracle):
    """``(value - random) / (oracle - random)``: 0 for the random agent, 1 for the oracle (NaN if they tie)."""
    value, random, oracle = (np.asarray(x, dtype=np.float64) for x in (value, random, oracle))
    span = oracle - random
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(span) > 1e-12, (value - random) / np.where(np.abs(span) > 1e-12, span, 1.0), np.nan)


def bootstrap_interval(values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean and a percentile bootstrap interval over episodes (seeded, so the same values give the same interval)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan")}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    return {"mean": float(x.mean()), "low": float(np.quantile(means, alpha)),
            "high": float(np.quantile(means, 1 - alpha))}
