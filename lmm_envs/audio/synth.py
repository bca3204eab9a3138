"""Synthesizers that turn a :class:`Performance` into mono audio at 22,050 Hz.

- :class:`HarmonicSynth` (default, built in): decaying harmonics with a per-pitch timbre. Its numpy path adds
  precomputed per-pitch note tables; its torch path (:meth:`HarmonicSynth.render_torch`) evaluates the same
  formula, batched, on any device, and is differentiable with respect to onsets, offsets and velocities.
- :class:`FluidSynth`: the realistic backend, through pretty_midi's pyfluidsynth binding and the General MIDI
  SoundFont that pretty_midi ships. Optional: ``pip install "lmm-envs[fluidsynth]"`` plus libfluidsynth.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Protocol, runtime_checkable

import numpy as np

from lmm_envs.errors import ConfigError, MissingDependencyError
from lmm_envs.music.score import Performance

SAMPLE_RATE = 22050


@runtime_checkable
class Synth(Protocol):
    """What every synthesizer offers."""

    name: str
    sample_rate: int

    def render(self, performance: Performance, duration: float | None = None) -> np.ndarray:
        """Mono float32 audio of ``performance``; ``duration`` (s) pads or cuts the result."""
        ...

    def cache_key(self) -> str:
        """A string that changes whenever the sound would change (used in cache keys)."""
        ...


def _n_samples(performance: Performance, duration: float | None, sr: int, tail: float) -> int:
    end = performance.end + tail if duration is None else duration
    return max(int(np.ceil(end * sr)), 1)


class HarmonicSynth:
    """Additive synth: per pitch a few harmonics with pitch-dependent brightness and decay.

    The note formula, for local time ``t`` after the onset, note length ``d`` and velocity ``v``::

        gain(v) * min(t / attack, 1) * clip(1 - (t - d) / release, 0, 1) * sum_h a_h exp(-t / tau_h) sin(2 pi h f0 t)
    """

    name = "harmonic"
    VERSION = 1

    def __init__(self, sample_rate: int = SAMPLE_RATE, max_note_seconds: float = 3.0, attack: float = 0.005,
                 release: float = 0.03, n_harmonics: int = 10, master_gain: float = 0.12):
        self.sample_rate = int(sample_rate)
        self.max_note_seconds = float(max_note_seconds)
        self.attack = float(attack)
        self.release = float(release)
        self.n_harmonics = int(n_harmonics)
        self.master_gain = float(master_gain)
        self._tables: dict[int, np.ndarray] = {}

    def cache_key(self) -> str:
        return (f"harmonic-v{self.VERSION}-sr{self.sample_rate}-len{self.max_note_seconds}-a{self.attack}"
                f"-r{self.release}-h{self.n_harmonics}-g{self.master_gain}")

    # --- the note formula's parameters (shared by the numpy and torch paths) ------------------------------
    def harmonic_params(self, pitch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frequencies (Hz), amplitudes and decay times (s) of the harmonics of ``pitch``."""
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        h = np.arange(1, self.n_harmonics + 1, dtype=np.float64)
        timbre = np.random.default_rng(1000 + int(pitch)).uniform(0.8, 1.2, h.size)  # per-pitch colour
        tilt = 1.2 + 0.02 * (pitch - 60)
        amp = timbre * h ** (-tilt)
        amp[1:][h[1:] * f0 >= 0.45 * self.sample_rate] = 0.0  # the fundamental always sounds
        amp /= amp.sum()
        tau = float(np.clip(1.5 * 2.0 ** (-(pitch - 60) / 24.0), 0.3, 4.0)) / (1.0 + 0.35 * (h - 1))
        return h * f0, amp, tau

    def velocity_gain(self, velocity):
        return (velocity / 127.0) ** 1.5 * self.master_gain

    def note_table(self, pitch: int) -> np.ndarray:
        """The sustained note of ``pitch`` at gain 1 (attack and decay, no release), float64."""
        table = self._tables.get(pitch)
        if table is None:
            freqs, amp, tau = self.harmonic_params(pitch)
            t = np.arange(int(self.max_note_seconds * self.sample_rate)) / self.sample_rate
            table = np.zeros_like(t)
            for f, a, ta in zip(freqs, amp, tau, strict=True):
                if a > 0:
                    active = t < 12.0 * ta  # beyond that the harmonic is below 1e-5
                    table[active] += a * np.exp(-t[active] / ta) * np.sin(2 * np.pi * f * t[active])
            table *= np.minimum(t / self.attack, 1.0)
            self._tables[pitch] = table
        return table

    def render(self, performance: Performance, duration: float | None = None) -> np.ndarray:
        sr = self.sample_rate
        n = _n_samples(performance, duration, sr, tail=self.release + 0.05)
        out = np.zeros(n, dtype=np.float64)
        length_max = int(self.max_note_seconds * sr)
        starts = np.round(performance.onset * sr).astype(np.int64)
        lengths = performance.offset - performance.onset
        gains = self.velocity_gain(performance.velocity.astype(np.float64))
        t_all = np.arange(length_max) / sr
        for pitch, start, d, g in zip(performance.pitch, starts, lengths, gains, strict=True):
            if start >= n:
                continue
            stop = min(int(np.ceil((d + self.release) * sr)) + 1, length_max, n - start)
            if stop <= 0:
                continue
            # the release ramp is 1 up to the note's end, so only the samples after it are multiplied by it
            # (the same numbers as ramping the whole note: g * x * 1.0 == g * x), which halves the work
            held = min(max(int(np.floor(d * sr)), 0), stop)
            while held > 0 and t_all[held - 1] > d:  # the sample grid against d, as the ramp itself sees it
                held -= 1
            table = self.note_table(int(pitch))
            out[start:start + held] += g * table[:held]
            if held < stop:
                release = np.clip(1.0 - (t_all[held:stop] - d) / self.release, 0.0, 1.0)
                out[start + held:start + stop] += g * table[held:stop] * release
        return out.astype(np.float32)

    def render_torch(self, pitch, onset, offset, velocity, n_samples: int, mask=None):
        """Differentiable batched rendering: inputs ``(B, N)`` tensors, output ``(B, n_samples)``.

        Gradients flow to ``onset``, ``offset`` and ``velocity`` (seconds, seconds, 1..127 as floats).
        ``mask`` (B, N) marks real notes (padding is 0). Runs on the inputs' device.
        """
        import torch

        sr = self.sample_rate
        length = int(self.max_note_seconds * sr)
        device, dtype = onset.device, onset.dtype
        batch, notes = onset.shape
        if mask is None:
            mask = torch.ones_like(onset)
        start = torch.floor(onset.detach() * sr).long()
        k = torch.arange(length, device=device)
        t = (k.view(1, 1, -1) + start.unsqueeze(-1)).to(dtype) / sr - onset.unsqueeze(-1)  # (B, N, L) local time
        dur = (offset - onset).unsqueeze(-1)
        env = torch.clamp(t / self.attack, max=1.0) * torch.clamp(1.0 - (t - dur) / self.release, 0.0, 1.0)
        env = env * (t >= 0)
        wave = torch.zeros_like(t)
        params = [self.harmonic_params(int(p)) for p in range(128)]
        freqs = torch.tensor(np.stack([p[0] for p in params]), device=device, dtype=dtype)[pitch.long()]
        amps = torch.tensor(np.stack([p[1] for p in params]), device=device, dtype=dtype)[pitch.long()]
        taus = torch.tensor(np.stack([p[2] for p in params]), device=device, dtype=dtype)[pitch.long()]
        for h in range(self.n_harmonics):
            wave = wave + amps[..., h:h + 1] * torch.exp(-t / taus[..., h:h + 1]) * torch.sin(
                2 * np.pi * freqs[..., h:h + 1] * t)
        gain = self.velocity_gain(velocity) * mask
        notes_audio = wave * env * gain.unsqueeze(-1)
        out = torch.zeros(batch, n_samples + length + 1, device=device, dtype=dtype)
        index = (start.clamp(min=0, max=n_samples).unsqueeze(-1) + k.view(1, 1, -1)).reshape(batch, -1)
        out = out.scatter_add(1, index, notes_audio.reshape(batch, -1))
        return out[:, :n_samples]


class FluidSynth:
    """SoundFont synthesis through pyfluidsynth (via pretty_midi) with pretty_midi's bundled General MIDI font."""

    name = "fluidsynth"

    def __init__(self, sample_rate: int = SAMPLE_RATE, program: int = 0, sf2_path: str | None = None):
        require_fluidsynth()
        self.sample_rate = int(sample_rate)
        self.program = int(program)
        self.sf2_path = sf2_path or default_soundfont()

    def cache_key(self) -> str:
        with open(self.sf2_path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        return f"fluidsynth-sr{self.sample_rate}-prog{self.program}-sf{digest}"

    def render(self, performance: Performance, duration: float | None = None) -> np.ndarray:
        pm = performance.to_pretty_midi(program=self.program)
        audio = pm.fluidsynth(fs=self.sample_rate, **_soundfont_argument(pm, self.sf2_path)).astype(np.float32)
        n = _n_samples(performance, duration, self.sample_rate, tail=0.5)
        audio = np.pad(audio, (0, max(0, n - audio.size)))[:n]
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return audio / peak * 0.5 if peak > 0.5 else audio


def _soundfont_argument(pm, sf2_path: str) -> dict:
    """pretty_midi >= 0.2.11 takes the SoundFont as ``synthesizer`` (``sf2_path`` is deprecated there)."""
    import inspect

    params = inspect.signature(pm.fluidsynth).parameters
    return {"synthesizer": sf2_path} if "synthesizer" in params else {"sf2_path": sf2_path}


def default_soundfont() -> str:
    import pretty_midi

    return str(__import__("pathlib").Path(pretty_midi.__file__).with_name("TimGM6mb.sf2"))


@functools.lru_cache(maxsize=1)
def fluidsynth_available() -> bool:
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def require_fluidsynth() -> None:
    if not fluidsynth_available():
        raise MissingDependencyError(
            "the FluidSynth backend needs pyfluidsynth and libfluidsynth: "
            "pip install 'lmm-envs[fluidsynth]' and install libfluidsynth (Debian/Ubuntu: apt-get install libfluidsynth3), "
            "or use synth='harmonic'"
        )


SYNTHS = {"harmonic": HarmonicSynth, "fluidsynth": FluidSynth}


def make_synth(synth: str | Synth = "harmonic") -> Synth:
    """A synth from its name (``harmonic``, ``fluidsynth``) or an object that follows the :class:`Synth` protocol."""
    if isinstance(synth, (HarmonicSynth, FluidSynth)):  # the common case, without the protocol's slow check
        return synth
    if isinstance(synth, str):
        if synth not in SYNTHS:
            raise ConfigError(f"unknown synth {synth!r}; choose one of {', '.join(SYNTHS)} or pass a Synth object")
        return _cached_synth(synth)
    if not isinstance(synth, Synth):
        raise ConfigError(f"synth must be a name or follow the Synth protocol, got {type(synth).__name__}")
    return synth


@functools.cache
def _cached_synth(name: str) -> Synth:
    return SYNTHS[name]()
