"""LM^V: the symbolic language model, trained only on the unpaired score pool.

Its symbols are score frames: the set of pitches with an onset in each 1/20 s of nominal score time (a multi-hot
vector over the 88 keys; an empty frame is a time step). Next-frame prediction over that grid is a language model
of notes and time, and it reads the agent's "score" window exactly as the env shows it, with no tokenisation
inside the policy.
"""

from __future__ import annotations

from agents.lm.data import SCORE_CONTEXT, pool_ids, score_frames
from agents.lm.model import FrameLM
from agents.lm.training import train_frame_lm


def train_symbolic_lm(size: str = "small", steps: int = 1500, limit: int | None = None, device: str = "cpu",
                      seed: int = 0, progress: bool = True, ids: list[str] | None = None
                      ) -> tuple[FrameLM, list[float], list[str]]:
    """Train LM^V on the unpaired score pool (its first ``limit`` pieces), or on the pieces ``ids`` (the pairs-only
    reference); returns model, losses, piece ids."""
    ids = list(ids) if ids is not None else pool_ids("unpaired_score", limit)
    sequences = [score_frames(i) for i in ids]
    model, losses = train_frame_lm(sequences, "bce", SCORE_CONTEXT, size, steps, device=device, seed=seed,
                                   progress=progress, desc="LM^V (scores)")
    return model, losses, ids
