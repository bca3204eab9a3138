"""Validation during training: the normalised score on val pieces against env steps, and the best model kept.

:class:`Validator` evaluates a model on the first ``pieces`` pieces of the val split under the env's protocol
settings (both renderings, random and oracle on the same episodes), records ``(env steps, normalised score)``
and saves the best model so far as ``best_model.zip``. :class:`ValidationCallback` calls it every ``every``
env steps of SB3 training; a warm start calls it after each of its rounds. The test split is never looked at.
"""

from __future__ import annotations

import math
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback


class Validator:
    """Validate ``model`` on val pieces; keeps the curve and ``out/best_model.zip`` (see the module docstring)."""

    def __init__(self, model, env_id: str, out: Path, pieces: int = 8):
        from lmm_envs.music.corpus import piece_ids

        self.model = model
        self.env_id = env_id
        self.out = Path(out)
        self.pieces = piece_ids(split="val")[:pieces]
        self.curve: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None

    def __call__(self, env_steps: int) -> float:
        from lmm_envs.benchmark.evaluate import evaluate
        from lmm_envs.files import atomic_path

        self.out.mkdir(parents=True, exist_ok=True)
        probe = self.out / "validating.zip"
        self.model.save(probe)
        try:
            result = evaluate(self.env_id, str(probe), pieces=self.pieces, progress=False)
        finally:
            probe.unlink(missing_ok=True)
        score = result["normalised_score"]["mean"]
        score = float("nan") if score is None else float(score)
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
