"""Audio features as in the score-following RL literature: a log-frequency spectrogram at 20 frames/s.

Frames are 2048 samples (Hann window) centred at ``i / FPS`` seconds; a triangular filterbank with 12 bands per
octave (semitones) between 60 Hz and 8 kHz (bands that fall on the same FFT bin are merged) gives :data:`N_BINS` bins, and
magnitudes are compressed with ``log1p(100 * amplitude)``.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lmm_envs.audio.synth import SAMPLE_RATE

FPS = 20
FRAME_SIZE = 2048
BANDS_PER_OCTAVE = 12
FMIN, FMAX = 60.0, 8000.0
FEATURE_VERSION = 2  # 2: scipy's FFT (float32, ~5x numpy's); values within 3e-7 of version 1


@functools.lru_cache(maxsize=4)
def log_filterbank(sample_rate: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Triangular filters on a log-frequency axis, shape ``(frame_size // 2 + 1, n_bins)``, float32."""
    fft_freqs = np.fft.rfftfreq(frame_size, 1.0 / sample_rate)
    n_octaves = np.log2(FMAX / FMIN)
    centers = FMIN * 2.0 ** (np.arange(int(n_octaves * BANDS_PER_OCTAVE) + 1) / BANDS_PER_OCTAVE)
    bins = np.unique(np.round(centers / (sample_rate / frame_size)).astype(int))
    bins = bins[(bins > 0) & (bins < fft_freqs.size - 1)]
    fb = np.zeros((fft_freqs.size, bins.size - 2), dtype=np.float32)
    for i in range(bins.size - 2):
        lo, mid, hi = bins[i], bins[i + 1], bins[i + 2]
        fb[lo:mid + 1, i] = np.linspace(0.0, 1.0, mid - lo + 1)
        fb[mid:hi + 1, i] = np.linspace(1.0, 0.0, hi - mid + 1)
        fb[:, i] /= fb[:, i].sum()
    return fb


N_BINS = log_filterbank().shape[1]


def band_frequencies(sample_rate: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Centre frequency (Hz) of each spectrogram bin."""
    fb = log_filterbank(sample_rate, frame_size)
    return np.fft.rfftfreq(frame_size, 1.0 / sample_rate)[np.argmax(fb, axis=0)]


@functools.cache
def _hann() -> np.ndarray:
    window = np.hanning(FRAME_SIZE).astype(np.float32)
    window.flags.writeable = False
    return window


def n_frames(n_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    return int(np.floor((n_samples - 1) / sample_rate * FPS)) + 1


def spectrogram(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-frequency magnitude spectrogram, shape ``(N_BINS, n_frames)``, float32."""
    import scipy.fft  # here, not at module level: it is most of ``import lmm_envs``, and prepared pieces skip it

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    frames = n_frames(audio.size, sample_rate)
    half = FRAME_SIZE // 2
    padded = np.pad(audio, (half, half + FRAME_SIZE))
    starts = np.round(np.arange(frames) * sample_rate / FPS).astype(np.int64)
    windows = sliding_window_view(padded, FRAME_SIZE)  # a view: frames are copied only block by block below
    window = _hann()
    filterbank = log_filterbank(sample_rate)
    out = np.empty((frames, filterbank.shape[1]), dtype=np.float32)
    block = 512  # bounded memory for long audio
    for b in range(0, frames, block):
        chunk = windows[starts[b:b + block]]
        chunk *= window
        out[b:b + block] = np.abs(scipy.fft.rfft(chunk, axis=1)) @ filterbank
    amplitude = out * (2.0 / window.sum())
    return np.log1p(100.0 * amplitude).T.copy()


def onset_strength(spec: np.ndarray) -> np.ndarray:
    """Positive spectral flux per frame (frame 0 is 0), shape ``(n_frames,)``."""
    flux = np.maximum(np.diff(spec, axis=1), 0.0).sum(axis=0)
    return np.concatenate([[0.0], flux]).astype(np.float32)
