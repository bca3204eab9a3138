"""Native vector envs, registered as each id's ``vector_entry_point``:
``gym.make_vec(ID, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``.

Two layers: :mod:`.base` (what every task shares: :class:`BatchedVectorEnv` and the array helpers) and one module
per task in numpy (:mod:`.score_following`, :mod:`.accompaniment`, :mod:`.playing` for SightReading and
PlayByEar), plus ScoreFollowing in torch on any device (:mod:`.score_following_torch`). Each task module imports
only the base (and the torch one the numpy ScoreFollowing's shared part); :func:`make_score_following_vector`
here chooses between numpy and torch, so no module imports one that imports it back.
"""

from __future__ import annotations

from typing import Any

from gymnasium.vector import VectorEnv

from lmm_envs.envs.vector.base import BatchedVectorEnv, as_pixels, env_seeds, metrics_info, row_windows
from lmm_envs.envs.vector.score_following import ScoreFollowingBatch, ScoreFollowingVectorEnv

__all__ = ["BatchedVectorEnv", "ScoreFollowingBatch", "ScoreFollowingVectorEnv", "as_pixels", "env_seeds",
           "make_score_following_vector", "metrics_info", "row_windows"]


def make_score_following_vector(num_envs: int = 1, device: str | None = None, **kwargs: Any) -> VectorEnv:
    """lmm/ScoreFollowing-v0's ``vector_entry_point``: the numpy :class:`ScoreFollowingVectorEnv`, or with
    ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``) the torch one, whose arrays stay on that device
    (:class:`lmm_envs.envs.vector.score_following_torch.TorchScoreFollowingVectorEnv`)."""
    if device is None:
        return ScoreFollowingVectorEnv(num_envs, **kwargs)
    from lmm_envs.envs.vector.score_following_torch import TorchScoreFollowingVectorEnv  # imports torch

    return TorchScoreFollowingVectorEnv(num_envs, device=device, **kwargs)
