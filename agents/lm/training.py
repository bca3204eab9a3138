"""Training a :class:`~agents.lm.model.FrameLM` on random windows of frame sequences: batches prepared ahead on a
second thread, a progress bar, checkpoints that make a run resumable bit for bit, and a held-out loss."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agents.lm.data import random_windows
from agents.lm.model import SIZES, FrameLM, LMConfig
from lmm_envs.music import corpus

CHECKPOINT_EVERY = 250  # optimiser steps between checkpoints


class BatchStream:
    """Batches of random windows made ahead, in order, on a background thread (numpy releases the GIL while
    copying, so the batch for step ``n + 1`` is built while step ``n`` trains). The sequence of batches is that of
    one ``numpy`` generator: the same seed and state give the same batches whatever the thread's timing."""

    def __init__(self, sequences: list[np.ndarray], length: int, batch_size: int, rng: np.random.Generator,
                 count: int, ahead: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._thread = threading.Thread(target=self._fill, args=(sequences, length, batch_size, rng, count),
                                        daemon=True)
        self._thread.start()

    def _fill(self, sequences, length, batch_size, rng, count) -> None:
        for _ in range(count):
            batch = random_windows(sequences, length, batch_size, rng)
            self._queue.put((batch, rng.bit_generator.state))

    def __iter__(self) -> Iterator[tuple[np.ndarray, dict]]:
        return self

    def __next__(self) -> tuple[np.ndarray, dict]:
        """The next batch and the generator's state just after making it (what a checkpoint keeps)."""
        return self._queue.get()


def _checkpoint_state(model, optimizer, schedule, rng_state, losses, step, identity) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "numpy_rng": rng_state, "torch_rng": torch.get_rng_state(), "losses": list(losses),
            "step": step, "identity": identity}


def _save_checkpoint(path: Path, state: dict) -> None:
    from lmm_envs.files import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train_frame_lm(sequences: list[np.ndarray], loss: str, context: int, size: str = "small", steps: int = 1500,
                   batch_size: int = 32, lr: float = 2e-3, device: str = "cpu", seed: int = 0,
                   progress: bool = True, desc: str = "LM", checkpoint: str | Path | None = None,
                   checkpoint_every: int = CHECKPOINT_EVERY, stop_after: int | None = None
                   ) -> tuple[FrameLM, list[float], bool]:
    """Train a frame LM with next-frame prediction; returns the model (eval mode), its loss per step, and whether
    training reached ``steps`` (False when ``stop_after`` ended this call first).

    With ``checkpoint``, the full training state (weights, optimiser, schedule, both random generators, losses) is
    saved there every ``checkpoint_every`` steps and when the call ends, and a call that finds a checkpoint of the
    same run (size, steps, seed, loss, context, batch, learning rate) resumes from it: an interrupted run resumed
    ends with the weights an uninterrupted one has. ``stop_after`` limits the steps taken in this call (a
    time-boxed session), leaving the rest for a later call.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = FrameLM(LMConfig(input_dim=sequences[0].shape[1], max_len=context + 1, loss=loss, **SIZES[size]))
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    identity = {"size": size, "steps": steps, "seed": seed, "loss": loss, "context": context,
                "batch_size": batch_size, "lr": lr, "input_dim": int(sequences[0].shape[1])}
    losses: list[float] = []
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=True)
        if state["identity"] != identity:
            raise ValueError(f"the checkpoint {path} is of another run ({state['identity']}); remove it or choose "
                             "another --out to start this one")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        losses, start = list(state["losses"]), int(state["step"])
    end = steps if stop_after is None else min(steps, start + stop_after)
    rng_state = rng.bit_generator.state
    batches = BatchStream(sequences, context + 1, batch_size, rng, end - start)
    for step in tqdm(range(start, end), desc=desc, disable=not progress, initial=start, total=steps):
        windows, rng_state = next(batches)
        batch = torch.from_numpy(windows).to(device)
        value = model.loss(batch)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(value.detach()))
        if path is not None and (step + 1) % checkpoint_every == 0 and step + 1 < end:
            _save_checkpoint(path, _checkpoint_state(model, optimizer, schedule, rng_state, losses, step + 1, identity))
    done = len(losses)
    if path is not None:
        _save_checkpoint(path, _checkpoint_state(model, optimizer, schedule, rng_state, losses, done, identity))
    return model.eval(), losses, done >= steps


@torch.no_grad()
def held_out_loss(model: FrameLM, sequences: list[np.ndarray], context: int, windows: int = 512, seed: int = 1,
                  batch: int = 128) -> float:
    """Mean next-frame loss on ``windows`` fixed random windows of pieces the LM never trained on."""
    rng = np.random.default_rng(seed)
    data = random_windows(sequences, context + 1, windows, rng)
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, windows, batch):
        chunk = torch.from_numpy(data[i:i + batch]).to(device)
        total += float(model.loss(chunk)) * len(chunk)
    return total / windows


HELD_OUT_PIECES = 10  # the last pieces of each unpaired pool: never trained on, the held-out loss reads them


@dataclass
class LMRun:
    """A trained LM and how it went: loss per step, the pieces it read, its loss on held-out pieces of its pool."""

    model: FrameLM
    losses: list[float]
    ids: list[str]
    held_out_ids: list[str]
    held_out_loss: float
    finished: bool


def train_pool_lm(pool: str, frames: Callable[[str], np.ndarray], loss: str, context: int, size: str = "small",
                  steps: int = 1500, limit: int | None = None, device: str = "cpu", seed: int = 0,
                  progress: bool = True, ids: list[str] | None = None, desc: str = "LM",
                  checkpoint: str | Path | None = None, stop_after: int | None = None) -> LMRun:
    """Train an LM on a pool's pieces (its first ``limit``, less the held-out ones) or on ``ids``, and measure it on
    the pool's last :data:`HELD_OUT_PIECES` pieces."""
    every = corpus.piece_ids(split="train", pool=pool)
    held_out_ids = every[-HELD_OUT_PIECES:]
    if ids is None:
        ids = every[:-HELD_OUT_PIECES][: limit or None]
    model, losses, finished = train_frame_lm([frames(i) for i in ids], loss, context, size, steps, device=device,
                                             seed=seed, progress=progress, desc=desc, checkpoint=checkpoint,
                                             stop_after=stop_after)
    held = held_out_loss(model, [frames(i) for i in held_out_ids], context)
    return LMRun(model, losses, list(ids), held_out_ids, held, finished)
