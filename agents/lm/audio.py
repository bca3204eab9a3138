"""LM^A: the audio language model, trained only on the unpaired audio pool (rendered performances).

Its frames are spectrogram columns as the env quantises them; it learns to predict the next frame.
"""

from __future__ import annotations

from agents.lm.data import AUDIO_CONTEXT, audio_frames, pool_ids
from agents.lm.model import FrameLM
from agents.lm.training import train_frame_lm


def train_audio_lm(size: str = "small", steps: int = 1500, limit: int | None = None, device: str = "cpu",
                   seed: int = 0, progress: bool = True, ids: list[str] | None = None
                   ) -> tuple[FrameLM, list[float], list[str]]:
    """Train LM^A on the unpaired audio pool (its first ``limit`` pieces), or on the pieces ``ids`` (the pairs-only
    reference); returns model, losses, piece ids."""
    ids = list(ids) if ids is not None else pool_ids("unpaired_audio", limit)
    sequences = [audio_frames(i) for i in ids]
    model, losses = train_frame_lm(sequences, "mse", AUDIO_CONTEXT, size, steps, device=device, seed=seed,
                                   progress=progress, desc="LM^A (audio)")
    return model, losses, ids
