"""Training a :class:`~agents.lm.model.FrameLM` on random windows of frame sequences, with a progress bar."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from agents.lm.data import random_windows
from agents.lm.model import SIZES, FrameLM, LMConfig


def train_frame_lm(sequences: list[np.ndarray], loss: str, context: int, size: str = "small", steps: int = 1500,
                   batch_size: int = 32, lr: float = 2e-3, device: str = "cpu", seed: int = 0,
                   progress: bool = True, desc: str = "LM") -> tuple[FrameLM, list[float]]:
    """Train a frame LM with next-frame prediction; returns the model (eval mode) and its loss per step."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = FrameLM(LMConfig(input_dim=sequences[0].shape[1], max_len=context + 1, loss=loss, **SIZES[size]))
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    losses = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress):
        batch = torch.from_numpy(random_windows(sequences, context + 1, batch_size, rng)).to(device)
        value = model.loss(batch)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(value.detach()))
    return model.eval(), losses
