import numpy as np
import pytest

from lmm_envs.audio import synth as synth_mod
from lmm_envs.audio.features import band_frequencies, spectrogram
from lmm_envs.audio.synth import FluidSynth, HarmonicSynth, fluidsynth_available, make_synth
from lmm_envs.errors import ConfigError, MissingDependencyError
from lmm_envs.music.score import Performance

A4 = Performance([69], [0.1], [1.1], [100], [0])


def peak_hz(audio, sr=22050):
    spectrum = np.abs(np.fft.rfft(audio))
    return np.fft.rfftfreq(audio.size, 1.0 / sr)[np.argmax(spectrum)]


def synths():
    out = [HarmonicSynth()]
    if fluidsynth_available():
        out.append(FluidSynth())
    return out


@pytest.mark.parametrize("synth", synths(), ids=lambda s: s.name)
def test_a4_has_its_peak_at_440_hz(synth):
    audio = synth.render(A4)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    assert peak_hz(audio) == pytest.approx(440.0, abs=3.0)
    spec = spectrogram(audio)
    assert band_frequencies()[spec.mean(axis=1).argmax()] == pytest.approx(440.0, rel=0.03)


def test_fluidsynth_backend_is_really_installed_in_ci():
    import os

    if os.environ.get("CI"):
        assert fluidsynth_available(), "CI installs libfluidsynth3 and pyfluidsynth"


def test_harmonic_synth_is_silent_before_the_onset_and_louder_with_velocity():
    synth = HarmonicSynth()
    soft = synth.render(Performance([60], [0.5], [1.0], [30], [0]))
    loud = synth.render(Performance([60], [0.5], [1.0], [120], [0]))
    assert np.abs(soft[: int(0.49 * 22050)]).max() == 0.0
    assert np.abs(loud).max() > 3 * np.abs(soft).max()


def test_torch_path_matches_numpy_and_is_differentiable():
    torch = pytest.importorskip("torch")
    synth = HarmonicSynth()
    perf = Performance([69, 72, 48], [0.1, 0.5, 0.3], [0.4, 0.8, 0.9], [100, 60, 80], [0, 0, 1])
    onset = torch.tensor(perf.onset[None], dtype=torch.float64, requires_grad=True)
    velocity = torch.tensor(perf.velocity[None], dtype=torch.float64, requires_grad=True)
    audio = synth.render_torch(torch.tensor(perf.pitch[None]), onset, torch.tensor(perf.offset[None], dtype=torch.float64),
                               velocity, n_samples=22050)
    reference = synth.render(perf, duration=1.0)
    assert np.abs(audio.detach().numpy()[0] - reference).max() < 1e-5
    audio.pow(2).sum().backward()
    assert torch.all(velocity.grad > 0) and torch.all(torch.isfinite(onset.grad)) and onset.grad.abs().sum() > 0


def test_torch_path_is_batched():
    torch = pytest.importorskip("torch")
    synth = HarmonicSynth(max_note_seconds=1.0)
    pitch = torch.tensor([[60, 64], [67, 0]])
    onset = torch.tensor([[0.0, 0.2], [0.1, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    out = synth.render_torch(pitch, onset, onset + 0.3, torch.full((2, 2), 90.0, dtype=torch.float64), 11025, mask)
    single = synth.render(Performance([67], [0.1], [0.4], [90], [0]), duration=0.5)
    assert out.shape == (2, 11025) and np.abs(out[1].numpy() - single).max() < 1e-5


def test_fluidsynth_missing_gives_an_install_hint(monkeypatch):
    monkeypatch.setattr(synth_mod, "fluidsynth_available", lambda: False)
    with pytest.raises(MissingDependencyError, match="apt-get install libfluidsynth3"):
        FluidSynth()


def test_unknown_synth_name():
    with pytest.raises(ConfigError, match="harmonic"):
        make_synth("theremin")


def test_render_adds_every_note_as_its_formula_says_bit_for_bit():
    """The render multiplies only a note's tail by its release ramp; the sum must be the formula's, exactly."""
    synth = HarmonicSynth()
    sr = synth.sample_rate
    rng = np.random.default_rng(3)
    n = 40
    onset = np.sort(rng.uniform(0.0, 4.0, n))
    duration = rng.uniform(0.0005, 3.5, n)  # shorter than a sample up to longer than a note table
    duration[:5] = np.arange(1, 6) * 1000 / sr  # ends exactly on a sample
    perf = Performance(rng.integers(30, 100, n), onset, onset + duration, rng.integers(20, 127, n), np.zeros(n, int))
    audio = synth.render(perf)
    expected = np.zeros(audio.size)
    length = int(synth.max_note_seconds * sr)
    t = np.arange(length) / sr
    for pitch, start, d, gain in zip(perf.pitch, np.round(perf.onset * sr).astype(int), duration,
                                     synth.velocity_gain(perf.velocity.astype(float)), strict=True):
        stop = min(int(np.ceil((d + synth.release) * sr)) + 1, length, audio.size - start)
        ramp = np.clip(1.0 - (t[:stop] - d) / synth.release, 0.0, 1.0)
        expected[start:start + stop] += gain * synth.note_table(int(pitch))[:stop] * ramp
    assert np.array_equal(audio, expected.astype(np.float32))
