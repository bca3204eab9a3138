"""Errors a user can cause. Each says what is wrong and what to do, in one line."""

from __future__ import annotations


class LMMError(Exception):
    """Base class of every error a user of lmm_envs can cause."""


class ScoreLoadError(LMMError):
    """A score or performance file is missing, corrupt, empty or has no notes."""


class AlignmentError(LMMError):
    """An alignment is empty, lacks its header, holds NaN or is not monotonic."""


class UnknownPieceError(LMMError):
    """A piece id that the bundled corpus does not hold."""


class MissingDependencyError(LMMError):
    """An optional dependency was asked for but is not installed."""


class ConfigError(LMMError, ValueError):
    """An unknown or out-of-range option (env kwarg, CLI flag, budget)."""


class InvalidActionError(LMMError, ValueError):
    """An action outside the action space, or a step the episode cannot take."""


class CacheError(LMMError):
    """The cache directory cannot be used."""


class LMMWarning(UserWarning):
    """Something a user may want to change, though it works as it is (e.g. a performer far from the score's tempo)."""


class TempoWarning(LMMWarning):
    """A performance is played far from its score's nominal tempo (``piece``, ``ratio``: the median ratio)."""

    def __init__(self, message: str, piece: str = "", ratio: float = 1.0):
        super().__init__(message)
        self.piece = piece
        self.ratio = ratio


class UnpreparedWarning(LMMWarning):
    """An env built a piece's rendering at reset because ``lmm-envs data prepare`` had not cached it."""
