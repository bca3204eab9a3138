"""A small causal transformer over a sequence of frames, the architecture of both LMs.

Each input frame is a vector (a score frame's onset set, or an audio frame's spectrum); the model embeds it,
adds a learned position, runs causal self-attention, and predicts the next frame: Bernoulli logits per pitch for
scores (``loss="bce"``), the next spectrum for audio (``loss="mse"``). Its hidden states are what the mapping
and the features extractors use. Saved as a plain ``{"config", "state_dict"}`` file, read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass
class LMConfig:
    input_dim: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 128
    loss: str = "bce"  # "bce" (multi-hot symbols) or "mse" (continuous frames)


SIZES = {  # presets; "small" is the default every earlier result used, "tiny" the one tests train in seconds
    "tiny": dict(d_model=16, n_layers=1, n_heads=2),
    "small": dict(d_model=64, n_layers=2, n_heads=4),
    "base": dict(d_model=128, n_layers=4, n_heads=4),
    "large": dict(d_model=256, n_layers=6, n_heads=8),
}


class FrameLM(nn.Module):
    """Causal transformer LM over frames: ``hidden(x)`` is ``(B, T, d_model)``, ``loss(x)`` next-frame prediction."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.input_dim, config.d_model)
        self.position = nn.Parameter(torch.zeros(config.max_len, config.d_model))
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, dim_feedforward=4 * config.d_model,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.input_dim)
        nn.init.normal_(self.position, std=0.02)

    def hidden(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The states of every frame: the LM's output (after the final norm, what its head reads) when ``layer`` is
        None, else the output of block ``layer`` (1 to ``n_layers``, or counted from the last: -1 is the last
        block's output before the final norm; 0: the input embedding), computing no block past it."""
        t = x.shape[1]
        if t > self.config.max_len:
            raise ValueError(f"sequence of {t} frames is longer than the model's {self.config.max_len}")
        mask = torch.triu(torch.full((t, t), float("-inf"), device=x.device), diagonal=1)
        h = self.embed(x) + self.position[:t]
        if layer is None:
            return self.norm(self.encoder(h, mask=mask, is_causal=True))
        check_layer(layer, self.config.n_layers)
        for block in self.encoder.layers[:layer if layer >= 0 else self.config.n_layers + 1 + layer]:
            h = block(h, src_mask=mask, is_causal=True)
        return h

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        """The next frame from hidden states: logits (bce) or values (mse)."""
        return self.head(hidden)

    def next_frame_loss(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "bce":
            return nn.functional.binary_cross_entropy_with_logits(predicted, target)
        return nn.functional.mse_loss(predicted, target)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean next-frame loss over a batch of sequences ``(B, T, input_dim)``."""
        return self.next_frame_loss(self.predict(self.hidden(x[:, :-1])), x[:, 1:])

    def save(self, path: str | Path) -> None:
        from lmm_envs.files import atomic_path

        with atomic_path(path) as tmp:
            torch.save({"config": asdict(self.config), "state_dict": self.state_dict()}, tmp)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> FrameLM:
        blob = torch.load(path, map_location=device, weights_only=True)
        model = cls(LMConfig(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        return model.to(device).eval()


def check_layer(layer: int | None, n_layers: int, name: str = "layer") -> None:
    """Refuse a layer the LM does not have (``ValueError``): None (the output), 0 to ``n_layers``, or a block counted
    from the last (-1 to ``-n_layers``)."""
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)
                              or not -n_layers <= layer <= n_layers):
        raise ValueError(f"{name} must be None (the LM's output), a block from 0 to {n_layers} or one counted from the "
                         f"last (-1 to -{n_layers}), got {layer!r}")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
