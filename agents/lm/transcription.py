"""h: A -> M, hearing which keys sound, learned by analysis-by-synthesis through the differentiable piano.

The motion -> audio map is known: the keyboard (:mod:`lmm_envs.audio.keyboard`) sounds a set of key activations as
their per-key spectra summed in linear amplitude, a linear and so differentiable map. :class:`KeyNet` inverts it
for one audio frame:

1. an encoder (an MLP over the frame and its neighbours, as the env quantises them) proposes key activations;
2. ``refine_steps`` multiplicative updates, unrolled inside the network, move them towards the non-negative
   activations whose rendering through the keyboard best explains the frame (the updates of non-negative least
   squares: ``a <- a * (y B^T) / (a B B^T)``, ``B`` the keys' spectra, ``y`` the frame in linear units);
3. a calibration head turns each key's log activation into the logit that the key is down (a scale and a
   threshold per key).

Training has two stages and two kinds of data. :func:`train_by_synthesis` fits the encoder on the *unpaired*
audio pool alone: the keyboard renders the network's activations and the loss is the distance to the input frame
(no labels anywhere). :func:`calibrate` then fits the whole network on the K paired pieces (binary cross-entropy
against the keys a paired performance holds down), keeping the synthesis loss on unpaired audio as a regulariser.
:func:`train_pairs_only` is the reference that shows what the unpaired audio adds: the same network trained on
the K pairs alone.

The audio is what lmm/PlayByEar-v0 lets an agent hear: the target recording as the keyboard plays it, in the
env's pixels (:func:`playing_frames`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lmm_envs.audio.features import N_BINS
from lmm_envs.audio.keyboard import N_KEYS, make_keyboard, to_linear
from lmm_envs.audio.synth import make_synth
from lmm_envs.envs.base import AUDIO_SCALE, audio_pixels

EPS = 1e-6
FLOOR = 1e-4  # the encoder's activations start above 0: a multiplicative update cannot revive a key at 0
START_THRESHOLD = 0.3  # the calibration head starts where the template transcriber thresholds its activations


@dataclass
class KeyNetConfig:
    context: int = 1  # frames on each side of the frame the encoder reads
    hidden: int = 256
    refine_steps: int = 20
    synth: str = "harmonic"


def encoder_input(pixels: np.ndarray, context: int) -> np.ndarray:
    """``(T, N_BINS)`` uint8 audio pixels -> ``(T, (2 * context + 1) * N_BINS)`` float32 encoder inputs: each frame
    beside its ``context`` neighbours on each side (zeros past the ends), scaled to [0, 1]."""
    frames = np.asarray(pixels, dtype=np.float32) / 255.0
    padded = np.pad(frames, ((context, context), (0, 0)))
    return np.concatenate([padded[i:i + len(frames)] for i in range(2 * context + 1)], axis=1)


def linear_frames(pixels: np.ndarray) -> np.ndarray:
    """``(T, N_BINS)`` uint8 audio pixels -> the same frames in linear amplitude (the units in which sounds add)."""
    return to_linear(np.asarray(pixels, dtype=np.float32) / AUDIO_SCALE)


class KeyNet(nn.Module):
    """Audio frames -> key activations (linear amplitude per key) and key-down logits (see the module docstring)."""

    def __init__(self, config: KeyNetConfig | None = None):
        super().__init__()
        self.config = config or KeyNetConfig()
        c = self.config
        self.encoder = nn.Sequential(
            nn.Linear((2 * c.context + 1) * N_BINS, c.hidden), nn.ReLU(),
            nn.Linear(c.hidden, c.hidden), nn.ReLU(),
            nn.Linear(c.hidden, N_KEYS),
        )
        basis = torch.from_numpy(np.ascontiguousarray(make_keyboard(make_synth(c.synth)).mean_spectrum()))
        self.register_buffer("basis", basis)  # (N_KEYS, N_BINS): each key's spectrum, the keyboard's mix matrix
        self.log_scale = nn.Parameter(torch.full((N_KEYS,), float(np.log(4.0))))
        self.log_threshold = nn.Parameter(torch.full((N_KEYS,), float(np.log(START_THRESHOLD))))

    def render(self, activations: torch.Tensor) -> torch.Tensor:
        """The keyboard's sound of key activations ``(B, N_KEYS)``: ``(B, N_BINS)`` linear amplitude."""
        return activations @ self.basis

    def activations(self, inputs: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """Key activations ``(B, N_KEYS)`` from encoder inputs ``(B, (2c+1) * N_BINS)`` and the frames in linear
        units ``(B, N_BINS)``."""
        a = nn.functional.softplus(self.encoder(inputs)) + FLOOR
        numerator = linear @ self.basis.T
        gram = self.basis @ self.basis.T
        for _ in range(self.config.refine_steps):
            a = a * numerator / (a @ gram + EPS)
        return a

    def key_logits(self, activations: torch.Tensor) -> torch.Tensor:
        """The logit that each key is down, from its activation."""
        return self.log_scale.exp() * (torch.log(activations + EPS) - self.log_threshold)

    def forward(self, inputs: torch.Tensor, linear: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.activations(inputs, linear)
        return a, self.key_logits(a)

    def hear_last(self, window: torch.Tensor, last: int) -> torch.Tensor:
        """Key-down probabilities ``(B, last, N_KEYS)`` of the last ``last`` frames of audio windows ``(B, W,
        N_BINS)`` in pixels / 255 (as SB3 hands uint8 windows to a policy). Each frame is read with its neighbours
        as :func:`encoder_input` lays them out; the window's last frame has no later one: zeros, as at a recording's
        end. The torch twin of :meth:`transcribe`, for a policy's batches."""
        c, w = self.config.context, window.shape[1]
        padded = nn.functional.pad(window, (0, 0, c, c))  # frame t sits at t + c
        inputs = torch.cat([padded[:, w - last + i:w - last + i + last] for i in range(2 * c + 1)], dim=2)
        linear = torch.expm1(window[:, -last:] * (255.0 / AUDIO_SCALE))  # :func:`linear_frames`
        _, logits = self(inputs.flatten(0, 1), linear.flatten(0, 1))
        return torch.sigmoid(logits).view(window.shape[0], last, -1)

    @torch.no_grad()
    def transcribe(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Activations and key-down probabilities, ``(T, N_KEYS)`` each, of ``(T, N_BINS)`` uint8 audio pixels.

        The same computation as :meth:`forward` in numpy (float32): an agent calls it every step on a few frames,
        where torch's per-operation overhead would cost ten times the arithmetic.
        """
        first, _, second, _, last = (layer for layer in self.encoder)
        x = encoder_input(pixels, self.config.context)
        for layer in (first, second):
            x = np.maximum(x @ layer.weight.numpy().T + layer.bias.numpy(), 0.0)
        z = x @ last.weight.numpy().T + last.bias.numpy()
        a = (np.logaddexp(z, 0.0) + FLOOR).astype(np.float32)  # softplus
        basis = self.basis.numpy()
        numerator = linear_frames(pixels) @ basis.T
        gram = basis @ basis.T
        for _ in range(self.config.refine_steps):
            a = a * numerator / (a @ gram + EPS)
        logits = np.exp(self.log_scale.numpy()) * (np.log(a + EPS) - self.log_threshold.numpy())
        return a, (0.5 + 0.5 * np.tanh(0.5 * logits)).astype(np.float32)  # the logistic, without overflow

    def save(self, path: str | Path, meta: dict | None = None) -> None:
        from lmm_envs.files import atomic_path

        with atomic_path(Path(path)) as tmp:
            torch.save({"config": asdict(self.config), "state_dict": self.state_dict(), "meta": meta or {}}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> KeyNet:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(KeyNetConfig(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        model.meta = blob.get("meta", {})
        return model.eval()


def synthesis_loss(model: KeyNet, inputs: torch.Tensor, linear: torch.Tensor, sparsity: float = 1e-3) -> torch.Tensor:
    """How far the keyboard's rendering of the network's activations is from the frames (mean squared error in
    linear units), plus a small L1 term that prefers fewer keys."""
    a = model.activations(inputs, linear)
    return (model.render(a) - linear).pow(2).mean() + sparsity * a.mean()


@dataclass
class FrameSet:
    """Frames for training h: encoder inputs, linear frames and (for pairs) the keys down at each frame."""

    inputs: torch.Tensor
    linear: torch.Tensor
    keys: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def build(cls, recordings: list[np.ndarray], context: int, keys: list[np.ndarray] | None = None) -> FrameSet:
        """From ``(T, N_BINS)`` uint8 pixel recordings (and, for pairs, their ``(T', N_KEYS)`` key states)."""
        if not recordings:
            raise ValueError("no recordings to train on")
        inputs = torch.from_numpy(np.concatenate([encoder_input(r, context) for r in recordings]))
        linear = torch.from_numpy(np.concatenate([linear_frames(r) for r in recordings]))
        labels = None
        if keys is not None:
            labels = torch.from_numpy(np.concatenate([_fit(k, len(r)) for r, k in zip(recordings, keys, strict=True)]))
        return cls(inputs, linear, labels)

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        i = torch.randint(len(self), (size,), generator=generator)
        return (self.inputs[i], self.linear[i]) + ((self.keys[i],) if self.keys is not None else ())


def _fit(keys: np.ndarray, n_frames: int) -> np.ndarray:
    """Key states cut or padded (keys up) to ``n_frames``, as float32 labels."""
    out = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    n = min(n_frames, len(keys))
    out[:n] = keys[:n]
    return out


def _optimise(model: KeyNet, loss_fn, steps: int, lr: float, seed: int, progress: bool, desc: str) -> list[float]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress):
        loss = loss_fn(generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def train_by_synthesis(unpaired: FrameSet, config: KeyNetConfig | None = None, steps: int = 3000,
                       batch_size: int = 512, lr: float = 2e-3, seed: int = 0, progress: bool = True
                       ) -> tuple[KeyNet, list[float]]:
    """Stage 1: the encoder learns from unpaired audio only, by rendering its activations through the keyboard."""
    torch.manual_seed(seed)
    model = KeyNet(config)
    losses = _optimise(model, lambda g: synthesis_loss(model, *unpaired.batch(batch_size, g)), steps, lr, seed,
                       progress, "h by synthesis (unpaired audio)")
    return model, losses


def pair_loss(model: KeyNet, inputs: torch.Tensor, linear: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the key-down logits against the keys a paired performance holds."""
    return nn.functional.binary_cross_entropy_with_logits(model(inputs, linear)[1], keys)


def calibrate(start: KeyNet, pairs: FrameSet, unpaired: FrameSet | None, steps: int = 2000, batch_size: int = 256,
              lr: float = 3e-4, synthesis_weight: float = 10.0, seed: int = 0, progress: bool = True
              ) -> tuple[KeyNet, list[float]]:
    """Stage 2: from a network trained by synthesis, fit the K pairs (keeping the synthesis loss on unpaired audio
    as a regulariser, weighted ``synthesis_weight``); returns a new network."""
    if pairs.keys is None:
        raise ValueError("calibration needs paired frames (audio with the keys held down)")
    model = copy.deepcopy(start)

    def loss_fn(g):
        loss = pair_loss(model, *pairs.batch(batch_size, g))
        if unpaired is not None and synthesis_weight:
            loss = loss + synthesis_weight * synthesis_loss(model, *unpaired.batch(batch_size, g))
        return loss

    return model, _optimise(model, loss_fn, steps, lr, seed, progress, "h calibrated on the pairs")


def train_pairs_only(pairs: FrameSet, config: KeyNetConfig | None = None, steps: int = 5000, batch_size: int = 256,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True) -> tuple[KeyNet, list[float]]:
    """The reference: the same network trained on the K pairs alone (no unpaired audio, no synthesis loss)."""
    if pairs.keys is None:
        raise ValueError("the pairs-only network needs paired frames (audio with the keys held down)")
    torch.manual_seed(seed)
    model = KeyNet(config)
    return model, _optimise(model, lambda g: pair_loss(model, *pairs.batch(batch_size, g)), steps, lr, seed,
                            progress, "h on the pairs alone")


def playing_frames(piece_id: str, variant: int = 0, synth: str = "harmonic") -> tuple[np.ndarray, np.ndarray]:
    """What lmm/PlayByEar-v0 (poly) lets an agent hear of a bundled piece's rendering, ``(T, N_BINS)`` uint8 pixels,
    and the keys its performance holds down, ``(T', N_KEYS)`` bool."""
    from lmm_envs.envs.sight_reading import playing_target
    from lmm_envs.pieces import performance_seed, prepare_piece

    piece = prepare_piece(piece_id, 1.0, performance_seed(piece_id, variant), synth=synth)
    target = playing_target(piece, mono=False, velocity=False, synth=make_synth(synth))
    return np.ascontiguousarray(audio_pixels(target.spectrum).T), target.keys
