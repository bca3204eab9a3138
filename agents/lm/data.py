"""Training data of the LMs, from the corpus pools: score frames, audio frames, and aligned pairs.

Frames are what the envs show an agent, so the LMs read observations as they are: a score frame is the onset set
of one column of the score roll (88 pitches, 20 frames per nominal second), an audio frame one column of the
spectrogram as the env quantises it (75 bins, scaled to [0, 1]).
"""

from __future__ import annotations

import numpy as np

from lmm_envs.audio.features import FPS
from lmm_envs.envs.base import ONSET_VALUE, audio_pixels, score_roll
from lmm_envs.music import corpus
from lmm_envs.pieces import corpus_score, performance_seed, prepare_piece

AUDIO_CONTEXT = 40  # frames of audio an agent hears (the "audio" window)
SCORE_CONTEXT = 80  # score frames an agent reads (the "score" window)
SCORE_POSITION = 20  # the agent's position in the score window (SCORE_LOOKBEHIND)


def _onsets(score) -> np.ndarray:
    return (score_roll(score) == ONSET_VALUE).T.astype(np.float32)


def _audio(piece) -> np.ndarray:
    return (audio_pixels(piece.spectrogram) / 255.0).T.astype(np.float32)


def _rendering(piece_id: str, variant: int, synth: str = "harmonic"):
    return prepare_piece(piece_id, 1.0, performance_seed(piece_id, variant), synth=synth)


def score_frames(piece_id: str) -> np.ndarray:
    """``(frames, 88)`` float32 onsets of a bundled piece's score at nominal tempo."""
    return _onsets(corpus_score(piece_id))


def audio_frames(piece_id: str, variant: int = 0) -> np.ndarray:
    """``(frames, 75)`` float32 spectrogram frames of one rendering, quantised as in the env, in [0, 1]."""
    return _audio(_rendering(piece_id, variant))


def load_paired(piece_id: str, variant: int = 0, synth: str = "harmonic") -> dict[str, np.ndarray]:
    """A paired piece: audio frames, score frames (onsets), per score frame the pitches sounding (``sounding``),
    and per audio frame the score frame being played (``position``); the audio rendered by ``synth`` (the envs'
    ``harmonic`` unless said)."""
    piece = _rendering(piece_id, variant, synth)
    roll = score_roll(piece.score).T
    score = (roll == ONSET_VALUE).astype(np.float32)
    position = np.clip(np.round(piece.score_positions * FPS).astype(np.int64), 0, score.shape[0] - 1)
    return {"audio": _audio(piece), "score": score, "sounding": roll > 0, "position": position, "id": piece_id}


def pool_ids(pool: str, limit: int | None = None) -> list[str]:
    return corpus.piece_ids(split="train", pool=pool)[: limit or None]


def random_windows(sequences: list[np.ndarray], length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` windows of ``length`` frames from random places in random sequences (zero-padded in front)."""
    out = np.zeros((count, length, sequences[0].shape[1]), dtype=np.float32)
    weights = np.array([len(s) for s in sequences], dtype=np.float64)
    which = rng.choice(len(sequences), size=count, p=weights / weights.sum())
    for k, i in enumerate(which):
        seq = sequences[i]
        end = int(rng.integers(1, len(seq) + 1))
        window = seq[max(0, end - length):end]
        out[k, length - len(window):] = window
    return out


def window_ending_at(seq: np.ndarray, end: int, length: int) -> np.ndarray:
    """Frames ``end - length + 1 .. end`` of ``seq`` (zero-padded before the start)."""
    out = np.zeros((length, seq.shape[1]), dtype=np.float32)
    window = seq[max(0, end - length + 1):end + 1]
    out[length - len(window):] = window
    return out


def score_window_at(score: np.ndarray, position: int) -> np.ndarray:
    """The agent's score window at a score frame: ``SCORE_POSITION`` frames before it, the rest after."""
    out = np.zeros((SCORE_CONTEXT, score.shape[1]), dtype=np.float32)
    start = position - SCORE_POSITION
    lo, hi = max(0, start), min(score.shape[0], start + SCORE_CONTEXT)
    if hi > lo:
        out[lo - start:hi - start] = score[lo:hi]
    return out
