"""Audio files in and out (WAV, FLAC, anything libsndfile reads), mono at the synth's sample rate."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from lmm_envs.audio.synth import SAMPLE_RATE
from lmm_envs.errors import ScoreLoadError


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio at ``sample_rate`` (resampled with a polyphase filter if needed)."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise ScoreLoadError(f"audio file not found: {p}; check the path")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:
        raise ScoreLoadError(f"{p} is not a readable audio file ({e}); use WAV or FLAC") from None
    if data.shape[0] == 0:
        raise ScoreLoadError(f"audio file {p} holds no samples")
    if not np.all(np.isfinite(data)):
        raise ScoreLoadError(f"audio file {p} holds NaN or infinite samples; re-export it as PCM WAV or FLAC")
    mono = data.mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(sr) // g).astype(np.float32)
    return mono


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono audio (format from the suffix: .wav, .flac); atomically, so no partial file is left."""
    import soundfile as sf

    from lmm_envs.files import atomic_path

    p = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(p.suffix.lower())
    if fmt is None:
        raise ScoreLoadError(f"cannot write audio as {p.suffix!r}; use .wav or .flac")
    with atomic_path(p) as tmp:
        sf.write(str(tmp), np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), sample_rate, format=fmt)
    return p
