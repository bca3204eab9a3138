"""Validation during training: the normalised score on val pieces against env steps, and the best model kept.

:class:`Validator` evaluates a model on ``pieces`` pieces spread over the val pieces its env plays
(:func:`val_pieces`: for ScoreFollowing its Bach chorales and folk tunes alike) under the env's protocol
settings (both renderings, random and oracle on the same episodes), records ``(env steps, normalised score)``
and saves the best model so far as ``best_model.zip``. :class:`ValidationCallback` calls it every ``every``
env steps of SB3 training; a warm start calls it after each of its rounds. The test split is never looked at.
"""

from __future__ import annotations

import math
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback


def val_score(env_id: str, model: Path, pieces: list[str]) -> float:
    """The normalised score of the saved ``model`` on ``pieces`` of the val split (NaN where it is undefined)."""
    from lmm_envs.benchmark.evaluate import evaluate

    score = evaluate(env_id, str(model), pieces=pieces, progress=False)["normalised_score"]["mean"]
    return float("nan") if score is None else float(score)


def val_pieces(count: int, env_id: str | None = None) -> list[str]:
    """The ``count`` val pieces a validation runs on: spread evenly over the split, so that both of its collections
    are in it (the split lists its 38 Bach chorales first; its first 8 pieces are all chorales). With ``env_id``,
    spread over the val pieces that env plays under its protocol (:func:`playable_val_pieces`): Accompaniment
    plays the 38 chorales only, the mono protocols of SightReading and PlayByEar 87 pieces, so a spread over the
    whole split would leave them 2 and 4 of 8."""
    from lmm_envs.benchmark.protocol import subset_indices
    from lmm_envs.music.corpus import piece_ids

    every = piece_ids(split="val") if env_id is None else playable_val_pieces(env_id)
    return [every[i] for i in subset_indices(len(every), count)]


def playable_val_pieces(env_id: str) -> list[str]:
    """The val pieces ``env_id`` accepts under its protocol's settings (in the split's order)."""
    import gymnasium as gym

    from lmm_envs.benchmark.protocol import get_protocol

    env = gym.make(env_id, split="val", **get_protocol(env_id).env_kwargs)
    try:
        return [str(source) for source in env.unwrapped.sources]
    finally:
        env.close()


class Validator:
    """Validate ``model`` on val pieces; keeps the curve and ``out/best_model.zip`` (see the module docstring)."""

    def __init__(self, model, env_id: str, out: Path, pieces: int = 8):
        self.model = model
        self.env_id = env_id
        self.out = Path(out)
        self.pieces = val_pieces(pieces, env_id)
        self.curve: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None

    def __call__(self, env_steps: int) -> float:
        from lmm_envs.files import atomic_path

        self.out.mkdir(parents=True, exist_ok=True)
        probe = self.out / "validating.zip"
        self.model.save(probe)
        try:
            score = val_score(self.env_id, probe, self.pieces)
        finally:
            probe.unlink(missing_ok=True)
        self.curve.append((int(env_steps), score))
        if math.isfinite(score) and (self.best is None or score > self.best[1]):
            self.best = (int(env_steps), score)
            with atomic_path(self.out / "best_model.zip") as tmp:
                self.model.save(tmp)
        return score

    def record(self) -> dict:
        """What ``run.json`` keeps: the val pieces, the curve, and when the kept best model was made."""
        return {"split": "val", "pieces": self.pieces, "curve": [list(p) for p in self.curve],
                "best_env_steps": None if self.best is None else self.best[0],
                "best_normalised_score": None if self.best is None else self.best[1]}


class ValidationCallback(BaseCallback):
    """Calls a :class:`Validator` every ``every`` env steps of training (``offset``: env steps taken before)."""

    def __init__(self, validator: Validator, every: int, offset: int = 0):
        super().__init__()
        self.validator = validator
        self.every = every
        self.offset = offset
        self._next = every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.validator(self.offset + self.num_timesteps)
            self._next += self.every
        return True

    def _on_training_end(self) -> None:
        done = self.offset + self.num_timesteps
        if not self.validator.curve or self.validator.curve[-1][0] != done:
            self.validator(done)


CHECKPOINT_CURVE = "checkpoint_curve.json"


def checkpoint_curve(run: Path, env_id: str, every: int, pieces: int = 8, log=None) -> list[tuple[int, float]]:
    """A learning curve after the fact, for a run that did not validate while it trained (or is still training):
    the normalised score on ``pieces`` val pieces (:func:`val_pieces`, as :class:`Validator`) of the run's kept checkpoints,
    the first one and the first past every ``every`` RL steps, and the last, against env steps (the warm start's
    included). Each point is kept in ``run/checkpoint_curve.json`` as it is made, so a later call evaluates only
    checkpoints it has not seen: one can follow a run that spans sessions. ``log`` gets a line per evaluation."""
    import json

    from agents.train import checkpoints
    from lmm_envs.errors import ConfigError
    from lmm_envs.files import atomic_path

    if every < 1:
        raise ConfigError(f"--from-checkpoints needs a positive number of RL steps between points, got {every}")
    run = Path(run)
    found = checkpoints(run)
    if not found:
        raise ConfigError(f"{run / 'checkpoints'} holds no model_<N>_steps.zip; train with checkpoints first")
    chosen, next_mark = [], 0
    for steps, path in found:
        if steps >= next_mark or (steps, path) == found[-1]:
            chosen.append((steps, path))
            next_mark = (steps // every + 1) * every
    warm = run / "warm_start.json"
    offset = int(json.loads(warm.read_text())["env_steps"]) if warm.is_file() else 0
    val = val_pieces(pieces, env_id)
    kept_path = run / CHECKPOINT_CURVE
    kept = json.loads(kept_path.read_text()) if kept_path.is_file() else {}
    if kept.get("pieces") != val or kept.get("env_id") != env_id:
        kept = {"env_id": env_id, "split": "val", "pieces": val, "points": {}}
    for steps, path in chosen:
        if path.name in kept["points"]:
            continue
        kept["points"][path.name] = [offset + steps, val_score(env_id, path, val)]
        with atomic_path(kept_path) as tmp:
            tmp.write_text(json.dumps(kept, indent=1))
        if log is not None:
            log(f"{run}: {path.name} ({offset + steps} env steps) scores {kept['points'][path.name][1]:.3f} on "
                f"{len(val)} val pieces")
    return sorted(tuple(kept["points"][path.name]) for _, path in chosen)
