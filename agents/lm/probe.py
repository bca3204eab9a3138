"""What an LM^A state knows: a linear probe for the pitches sounding at an audio moment.

The probe is logistic regression from LM^A's state after the audio window ending at a frame (its last position,
the state an agent's features read) to the 88 keys sounding then (from the paired pieces' alignments). It is
fitted on paired pieces outside the retrieval task's held-out ones and scored by frame-level F1 on those held-out
pieces; the same probe on the raw audio frame (the LM's input) is the reference, so the report shows whether the
LM's state keeps more of the pitch content than the spectrum it reads.
"""

from __future__ import annotations

import numpy as np
import torch

from agents.lm.data import AUDIO_CONTEXT, load_paired, window_ending_at
from agents.lm.model import FrameLM

PROBE_PIECES = 40  # paired pieces the probe is fitted on (the first in budget order)
FRAMES_PER_PIECE = 100


def _moments(piece_ids: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Audio windows ending at random frames of the pieces, and the keys sounding at each frame."""
    windows, sounding = [], []
    for pid in piece_ids:
        p = load_paired(pid)
        for t in rng.integers(0, len(p["audio"]), size=FRAMES_PER_PIECE):
            windows.append(window_ending_at(p["audio"], int(t), AUDIO_CONTEXT))
            sounding.append(p["sounding"][p["position"][t]])
    return np.stack(windows), np.stack(sounding).astype(np.float32)


@torch.no_grad()
def _last_states(lm_a: FrameLM, windows: np.ndarray, batch: int = 256) -> torch.Tensor:
    device = next(lm_a.parameters()).device
    return torch.cat([lm_a.hidden(torch.from_numpy(windows[i:i + batch]).to(device))[:, -1].cpu()
                      for i in range(0, len(windows), batch)])


def _fit_and_score(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   steps: int = 500, weight_decay: float = 1e-4) -> float:
    """Logistic regression on standardised inputs (Adam, full batch); frame-level micro F1 at 0.5 on the test set."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(train_x.shape[1], train_y.shape[1])
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(linear(train_x), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = linear(test_x) > 0
    truth = test_y > 0.5
    hits = float((predicted & truth).sum())
    return 2 * hits / max(float(predicted.sum() + truth.sum()), 1.0)


def pitch_probe(lm_a: FrameLM, train_ids: list[str], test_ids: list[str], seed: int = 0) -> dict[str, float]:
    """F1 of the linear pitch probe from LM^A's state (``f1``) and from the raw audio frame (``input_f1``)."""
    rng = np.random.default_rng(seed)
    train_w, train_y = _moments(train_ids, rng)
    test_w, test_y = _moments(test_ids, rng)
    train_y_t, test_y_t = torch.from_numpy(train_y), torch.from_numpy(test_y)
    state_f1 = _fit_and_score(_last_states(lm_a, train_w), train_y_t, _last_states(lm_a, test_w), test_y_t)
    input_f1 = _fit_and_score(torch.from_numpy(train_w[:, -1]), train_y_t, torch.from_numpy(test_w[:, -1]), test_y_t)
    return {"f1": state_f1, "input_f1": input_f1, "train_frames": len(train_w), "test_frames": len(test_w)}
