import numpy as np
import pytest

from lmm_envs.audio.features import FPS, N_BINS, n_frames, onset_strength, spectrogram


def test_about_78_log_frequency_bins_at_20_fps():
    assert 70 <= N_BINS <= 90
    audio = np.zeros(22050 * 3, dtype=np.float32)
    spec = spectrogram(audio)
    assert spec.shape == (N_BINS, n_frames(audio.size)) == (N_BINS, 3 * FPS)
    assert spec.dtype == np.float32 and spec.max() == 0.0


def test_onsets_show_up_in_the_flux():
    audio = np.zeros(22050 * 2, dtype=np.float32)
    t = np.arange(11025) / 22050
    audio[22050:] = 0.3 * np.sin(2 * np.pi * 330 * t) .repeat(2)[:22050]
    flux = onset_strength(spectrogram(audio))
    assert abs(int(np.argmax(flux)) - FPS) <= 1


def test_loud_input_stays_finite():
    spec = spectrogram(np.ones(22050, dtype=np.float32))
    assert np.all(np.isfinite(spec)) and spec.max() < 12.0


@pytest.mark.parametrize("seconds", [0.01, 1.0, 2.51])
def test_frame_count_covers_the_audio(seconds):
    n = int(seconds * 22050)
    assert spectrogram(np.zeros(n, dtype=np.float32)).shape[1] == int(np.floor((n - 1) / 22050 * FPS)) + 1


def test_spectrogram_is_the_documented_transform_to_float32_precision():
    """Hann-windowed 2048-sample frames centred at i / FPS, magnitude, the log filterbank, log1p(100 x)."""
    from lmm_envs.audio.features import FRAME_SIZE, log_filterbank

    audio = np.random.default_rng(0).standard_normal(22050 * 2).astype(np.float32) * 0.1
    spec = spectrogram(audio)
    window = np.hanning(FRAME_SIZE)
    padded = np.pad(audio.astype(np.float64), (FRAME_SIZE // 2, FRAME_SIZE // 2 + FRAME_SIZE))
    for i in (0, 7, spec.shape[1] - 1):
        start = int(np.round(i * 22050 / FPS))
        magnitude = np.abs(np.fft.rfft(padded[start:start + FRAME_SIZE] * window))
        expected = np.log1p(100.0 * (magnitude @ log_filterbank()) * 2.0 / window.sum())
        np.testing.assert_allclose(spec[:, i], expected, rtol=1e-5, atol=1e-5)


def test_importing_the_package_leaves_scipy_to_the_first_spectrogram():
    """scipy's FFT was half of ``import lmm_envs``; every process that only reads prepared pieces (a Ray or pool
    worker, the CLI, an env over a prepared split) skips it."""
    import subprocess
    import sys

    code = ("import sys, lmm_envs, lmm_envs.benchmark.evaluate, numpy as np\n"
            "assert not any(m.startswith('scipy') for m in sys.modules), 'scipy imported with the package'\n"
            "from lmm_envs.audio.features import spectrogram\n"
            "spectrogram(np.zeros(4410, dtype=np.float32))\n"
            "assert 'scipy.fft' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
