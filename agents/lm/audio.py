"""LM^A: the audio language model, trained only on the unpaired audio pool (rendered performances).

Its frames are spectrogram columns as the env quantises them; it learns to predict the next frame.
"""

from __future__ import annotations

from pathlib import Path

from agents.lm.data import AUDIO_CONTEXT, audio_frames
from agents.lm.training import LMRun, train_pool_lm


def train_audio_lm(size: str = "small", steps: int = 1500, limit: int | None = None, device: str = "cpu",
                   seed: int = 0, progress: bool = True, ids: list[str] | None = None,
                   checkpoint: str | Path | None = None, stop_after: int | None = None) -> LMRun:
    """Train LM^A on the unpaired audio pool (its first ``limit`` pieces, less the held-out ones), or on the pieces
    ``ids`` (the pairs-only reference); see :func:`~agents.lm.training.train_pool_lm`."""
    return train_pool_lm("unpaired_audio", audio_frames, "mse", AUDIO_CONTEXT, size, steps, limit, device, seed,
                         progress, ids, "LM^A (audio)", checkpoint, stop_after)
