"""ScoreFollowing batched in torch, on any torch device:
``gym.make_vec("lmm/ScoreFollowing-v0", num_envs=N, vectorization_mode="vector_entry_point", device="cuda")``.

:class:`TorchScoreFollowingVectorEnv` keeps every episode's tables (spectrogram and score-roll pixels, true
positions, the pointer's trajectory) and state on ``device`` and steps all N episodes as torch operations there.
Observations, rewards, ``terminated`` and ``truncated`` come back as torch tensors on that device, for training
loops that keep rollouts on the GPU (SB3's ``VecEnv`` takes numpy: use the numpy env,
:class:`~lmm_envs.envs.vector.ScoreFollowingVectorEnv`, for SB3).

It computes what the numpy env computes, with the same float64 arithmetic op for op, so for the same seeds it gives
the same observations, rewards and episode metrics bit for bit (tested on CPU; the benchmark
``benchmarks/torch_vector.py`` checks it on a GPU). Episodes start on the CPU, as the single env's do (each sub-env
keeps its own seeded RNG and piece choice): an episode that ends is reset there on the next step and its tables
copied onto the device. A step synchronises with the device once, to learn which episodes ended; ``infos`` hold
their metrics as numpy arrays, as the numpy env's do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmm_envs.audio.features import FPS
from lmm_envs.envs import MAX_EPISODE_STEPS
from lmm_envs.envs.base import AUDIO_WINDOW, SCORE_WINDOW
from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP
from lmm_envs.envs.vector.base import BatchedVectorEnv, env_seeds, metrics_info
from lmm_envs.envs.vector.score_following import ScoreFollowingBatch
from lmm_envs.errors import ConfigError, InvalidActionError


def torch_device(device: str):
    """``device`` as a ``torch.device`` (``"auto"``: CUDA when torch sees a GPU, else CPU), with a one-line error
    for a name torch does not know or a GPU it cannot see."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device must be a torch device such as 'cpu', 'cuda' or 'auto', got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return resolved


class TorchScoreFollowingVectorEnv(ScoreFollowingBatch):
    """N lmm/ScoreFollowing-v0 episodes stepped together as torch operations on ``device`` (see the module
    docstring); the env's kwargs, plus ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``)."""

    def __init__(self, num_envs: int = 1, device: str = "auto", max_episode_steps: int = MAX_EPISODE_STEPS,
                 **kwargs: Any):
        import torch

        self.device = torch_device(device)
        self._set_up(num_envs, max_episode_steps, kwargs, numpy_observations=False)
        n, on = self.num_envs, {"device": self.device}
        self._frame = torch.zeros(n, dtype=torch.int64, **on)
        self._pointer = torch.zeros(n, dtype=torch.float64, **on)
        self._ratio = torch.ones(n, dtype=torch.float64, **on)
        self._off = torch.zeros(n, dtype=torch.int64, **on)
        self._lost = torch.zeros(n, dtype=torch.bool, **on)
        self._lost_frame = torch.zeros(n, dtype=torch.int64, **on)  # first frame of the run that lost the piece
        self._last = torch.zeros(n, dtype=torch.int64, **on)
        self._end = torch.zeros(n, dtype=torch.float64, **on)
        self._elapsed = torch.zeros(n, dtype=torch.int64, **on)
        self._slots: dict[str, Any] = {}
        self._index = torch.arange(n, **on)
        # divisors as device tensors: CUDA divides by a Python number as a multiplication by its reciprocal, which
        # can round differently from numpy's division; by a tensor it divides exactly as numpy does
        self._fps = torch.tensor(float(FPS), dtype=torch.float64, **on)
        self._reward_width = torch.tensor(self.reward_width, dtype=torch.float64, **on)
        self._tempo_steps = torch.tensor([-TEMPO_STEP, 0.0, TEMPO_STEP], dtype=torch.float64, **on)
        self._ended: list[int] = []  # the envs whose episode ended last step (reset at the start of this one)

    # --- episodes -----------------------------------------------------------------------------------------
    def _ensure(self, name: str, shape: tuple[int, ...], length: int, dtype) -> Any:
        """A per-env slot table ``(num_envs, *shape, length)`` on the device, grown (never shrunk) to fit."""
        import torch

        table = self._slots.get(name)
        if table is None or table.shape[-1] < length:
            old = 0 if table is None else table.shape[-1]
            grown = torch.zeros((self.num_envs, *shape, max(length, 2 * old)), dtype=dtype, device=self.device)
            if table is not None:
                grown[..., :old] = table
            self._slots[name] = table = grown
        return table

    def _load_all(self, ids: list[int]) -> Any:
        """Take the freshly reset episodes of sub-envs ``ids`` into the device state: each one's tables into its
        slot, and the step state of all of them set in one write per array. Returns ``ids`` as a device tensor."""
        import torch

        for i in ids:
            env = self.envs[i]
            spec, roll, truth = env._spec[0], env._roll[0], env._truth
            on = {"device": self.device}  # torch.tensor copies: the prepared arrays are read-only and shared
            self._ensure("audio", spec.shape[:1], spec.shape[1], torch.uint8)[i, :, :spec.shape[1]] = \
                torch.tensor(spec, **on)
            self._ensure("score", roll.shape[:1], roll.shape[1], torch.uint8)[i, :, :roll.shape[1]] = \
                torch.tensor(roll, **on)
            self._ensure("truth", (), truth.size, torch.float64)[i, :truth.size] = torch.tensor(truth, **on)
            self._ensure("trajectory", (), truth.size, torch.float64)[i, :truth.size] = 0.0
        rows = torch.tensor(ids, dtype=torch.int64, device=self.device)
        for name, value in (("_frame", 0), ("_pointer", 0.0), ("_ratio", 1.0), ("_off", 0), ("_lost", False),
                            ("_lost_frame", 0), ("_elapsed", 0)):
            getattr(self, name)[rows] = value
        self._last[rows] = torch.tensor([self.envs[i]._last_frame for i in ids], dtype=torch.int64, device=self.device)
        self._end[rows] = torch.tensor([self.envs[i]._score_end for i in ids], dtype=torch.float64, device=self.device)
        return rows

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        super(BatchedVectorEnv, self).reset(seed=seed)  # VectorEnv's: seeds np_random; the episodes are ours
        for env, s in zip(self.envs, env_seeds(seed, self.num_envs), strict=True):
            env.reset(seed=s, options=options)
        self._load_all(list(range(self.num_envs)))
        self._ended = []
        return self._gather(), {}

    # --- stepping -----------------------------------------------------------------------------------------
    def _check_actions(self, actions) -> Any:
        """The actions as a device tensor (int64 for discrete, float64 ratios' source for continuous), after the
        checks the numpy env makes; a tensor already on the device is checked there."""
        import torch

        a = actions if isinstance(actions, torch.Tensor) else torch.as_tensor(np.asarray(actions))
        if self.discrete:
            if (a.shape != (self.num_envs,) or a.dtype.is_floating_point or a.dtype.is_complex
                    or a.dtype == torch.bool or not self._within(a, 0, 2)):
                raise InvalidActionError(f"actions must be {self.num_envs} integers in 0..2, got {actions!r}")
            return a.to(device=self.device, dtype=torch.int64)
        if a.dtype.is_complex or a.dtype == torch.bool:
            raise InvalidActionError(f"actions must be finite, in [-1, 1], shape ({self.num_envs}, 1)")
        a = a.to(torch.float64)
        if a.numel() == self.num_envs:
            a = a.reshape(self.num_envs, -1)
        if a.shape != (self.num_envs, 1) or not bool((torch.isfinite(a) & (a.abs() <= 1 + 1e-6)).all()):
            raise InvalidActionError(f"actions must be finite, in [-1, 1], shape ({self.num_envs}, 1)")
        return a.to(torch.float32).to(device=self.device, dtype=torch.float64)[:, 0]

    @staticmethod
    def _within(a, low: int, high: int) -> bool:
        """Whether every entry of integer tensor ``a`` lies in ``low..high`` (one read back from the device)."""
        import torch

        smallest, largest = torch.stack(torch.aminmax(a)).tolist()
        return low <= smallest and largest <= high

    def step(self, actions):
        import torch

        a = self._check_actions(actions)
        act = None  # which envs act: all of them, unless some were reset this step (those only observe)
        if self._ended:
            for i in self._ended:
                self.envs[i].reset()
            act = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
            act[self._load_all(self._ended)] = False

        def acting(new, old):
            return new if act is None else torch.where(act, new, old)

        if self.discrete:  # (a - 1) * TEMPO_STEP, looked up: the same three float64 values
            ratio = torch.clamp(self._ratio + self._tempo_steps[a], 0.0, MAX_RATIO)
        else:
            ratio = torch.where(a <= 0, 1.0 + a, 1.0 + a * (MAX_RATIO - 1.0))
        self._ratio = acting(ratio, self._ratio)
        steps = 1 if act is None else act
        self._frame += steps
        self._pointer = acting(torch.minimum(self._pointer + self._ratio / self._fps, self._end), self._pointer)
        idx, f = self._index, self._frame
        trajectory = self._slots["trajectory"]
        trajectory[idx, f] = acting(self._pointer, trajectory[idx, f])
        error = (self._pointer - self._slots["truth"][idx, f]).abs()
        rewards = torch.clamp(1.0 - error / self._reward_width, min=0.0)
        self._off = acting(torch.where(error > self.lost_tolerance, self._off + 1, 0), self._off)
        lost_now = self._off >= self.lost_patience
        if act is not None:
            rewards, lost_now = torch.where(act, rewards, 0.0), lost_now & act
        self._lost_frame = torch.where(lost_now & ~self._lost, f - (self.lost_patience - 1), self._lost_frame)
        self._lost |= lost_now
        terminated = f >= self._last
        if self.terminate_on_lost:
            terminated |= lost_now
        self._elapsed += steps
        truncated = ~terminated & (self._elapsed >= self.max_episode_steps)
        if act is not None:
            terminated &= act
            truncated &= act
        self._ended = torch.nonzero(terminated | truncated).flatten().tolist()  # the step's one synchronisation
        return self._gather(), rewards, terminated, truncated, self._ended_metrics()

    def _ended_metrics(self) -> dict:
        """``infos`` of a step: the metrics of the episodes that ended, computed on the CPU from their trajectory."""
        rows = self._ended
        if not rows:
            return {}
        # what the metrics need, read back from the device once for all ended envs
        at = {i: k for k, i in enumerate(rows)}
        frames = self._frame[rows].tolist()
        lost = self._lost[rows].tolist()
        lost_frames = self._lost_frame[rows].tolist()
        trajectories = self._slots["trajectory"][rows].cpu().numpy()

        def metrics_of(i: int) -> dict[str, float]:
            env, k = self.envs[i], at[i]
            env._frame = frames[k]
            env._lost_time = lost_frames[k] / FPS if lost[k] else None
            env._trajectory = trajectories[k, :env._trajectory.size].copy()
            return env.episode_metrics()

        return metrics_info(np.array(rows, dtype=np.int64), metrics_of)

    def _gather(self) -> dict[str, Any]:
        """Every env's observation, cut on the device: audio at its frame, score at its pointer's column."""
        import torch

        idx, n = self._index, self.num_envs
        columns = (self._pointer * FPS + 0.5).to(torch.int64)
        audio = self._slots["audio"].unfold(2, AUDIO_WINDOW, 1)[idx, :, self._frame]
        score = self._slots["score"].unfold(2, SCORE_WINDOW, 1)[idx, :, columns]
        return {"audio": audio.reshape(n, 1, -1, AUDIO_WINDOW), "score": score.reshape(n, 1, -1, SCORE_WINDOW),
                "tempo": self._ratio.to(torch.float32).reshape(n, 1)}
