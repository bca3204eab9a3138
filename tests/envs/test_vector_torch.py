"""The torch batched ScoreFollowing env (``device=...``) gives exactly what the numpy vector env gives."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import lmm_envs  # noqa: F401
from lmm_envs.envs.vector import ScoreFollowingVectorEnv
from lmm_envs.envs.vector.score_following_torch import TorchScoreFollowingVectorEnv
from lmm_envs.errors import ConfigError, InvalidActionError
from lmm_envs.music.corpus import piece_ids, piece_info

ID = "lmm/ScoreFollowing-v0"
PIECES = (sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:2]
          + sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:2])
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def host(x) -> np.ndarray:
    return x.cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kwargs", [{}, {"action_type": "continuous", "reward_width": 0.3}, {"terminate_on_lost": False,
                                                                          "max_episode_steps": 150}],
                         ids=["discrete", "continuous", "truncated"])
def test_torch_env_equals_the_numpy_env_bit_for_bit(device, kwargs):
    ref = gym.make_vec(ID, num_envs=4, vectorization_mode="vector_entry_point", pieces=PIECES, **kwargs)
    dev = gym.make_vec(ID, num_envs=4, vectorization_mode="vector_entry_point", pieces=PIECES, device=device, **kwargs)
    assert isinstance(ref, ScoreFollowingVectorEnv) and isinstance(dev, TorchScoreFollowingVectorEnv)
    assert dev.observation_space == ref.observation_space and dev.action_space == ref.action_space
    a, _ = ref.reset(seed=11)
    b, _ = dev.reset(seed=11)
    assert all(b[k].device.type == device and a[k].tobytes() == host(b[k]).tobytes() for k in a)
    ref.action_space.seed(3)
    ends = 0
    for step in range(400):
        action = ref.action_space.sample()
        given = torch.as_tensor(action, device=device) if step % 2 else action  # tensors on the device, or numpy
        a, ra, ta, tra, ia = ref.step(action)
        b, rb, tb, trb, ib = dev.step(given)
        assert all(a[k].tobytes() == host(b[k]).tobytes() for k in a), step
        assert ra.tobytes() == host(rb).tobytes() and rb.device.type == device
        assert np.array_equal(ta, host(tb)) and np.array_equal(tra, host(trb))
        assert ia.keys() == ib.keys()
        if ia:
            ends += 1
            assert np.array_equal(ia["episode_metrics_index"], ib["episode_metrics_index"])
            for name, values in ia["episode_metrics"].items():
                assert values.tobytes() == ib["episode_metrics"][name].tobytes(), name
    assert ends > 0  # episodes ended, were reset and their tables copied onto the device inside the run
    ref.close()
    dev.close()


def test_torch_env_refuses_bad_actions_and_stays_usable():
    envs = gym.make_vec(ID, num_envs=3, vectorization_mode="vector_entry_point", pieces=PIECES, device="cpu")
    envs.reset(seed=0)
    before = envs.unwrapped._pointer.clone()
    for bad in (np.array([0, 1, 3]), np.array([0, 1]), np.array([0.5, 1.0, 1.0]), torch.tensor([-1, 0, 0])):
        with pytest.raises(InvalidActionError):
            envs.step(bad)
    assert torch.equal(envs.unwrapped._pointer, before)  # a refused step changes nothing
    envs.step(np.array([0, 1, 2]))
    continuous = gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", pieces=PIECES,
                              action_type="continuous", device="cpu")
    continuous.reset(seed=0)
    for bad in (np.array([[0.5], [1.5]]), np.array([[np.nan], [0.0]]), np.zeros((2, 2))):
        with pytest.raises(InvalidActionError):
            continuous.step(bad)


def test_a_device_torch_cannot_use_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="torch device"):
        gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", pieces=PIECES, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", pieces=PIECES, device="cuda")
    auto = gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", pieces=PIECES, device="auto")
    assert auto.unwrapped.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
