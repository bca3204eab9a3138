"""LM^V: the symbolic language model, trained only on the unpaired score pool.

Its symbols are score frames: the set of pitches with an onset in each 1/20 s of nominal score time (a multi-hot
vector over the 88 keys; an empty frame is a time step). Next-frame prediction over that grid is a language model
of notes and time, and it reads the agent's "score" window exactly as the env shows it, with no tokenisation
inside the policy.
"""

from __future__ import annotations

from pathlib import Path

from agents.lm.data import SCORE_CONTEXT, score_frames
from agents.lm.training import LMRun, train_pool_lm


def train_symbolic_lm(size: str = "small", steps: int = 1500, limit: int | None = None, device: str = "cpu",
                      seed: int = 0, progress: bool = True, ids: list[str] | None = None,
                      checkpoint: str | Path | None = None, stop_after: int | None = None) -> LMRun:
    """Train LM^V on the unpaired score pool (its first ``limit`` pieces, less the held-out ones), or on the pieces
    ``ids`` (the pairs-only reference); see :func:`~agents.lm.training.train_pool_lm`."""
    return train_pool_lm("unpaired_score", score_frames, "bce", SCORE_CONTEXT, size, steps, limit, device, seed,
                         progress, ids, "LM^V (scores)", checkpoint, stop_after)
