"""The native vector envs (each id's vector_entry_point) give exactly what SyncVectorEnv over single envs gives."""

import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.envs.vector import as_pixels, row_windows
from lmm_envs.errors import ConfigError, InvalidActionError
from lmm_envs.music.corpus import piece_ids, piece_info

ENV_IDS = sorted(k for k in gym.registry if k.startswith("lmm/"))
PIECES = (sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:2]
          + sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:2])
CASES = [(env_id, {}) for env_id in ENV_IDS] + [("lmm/ScoreFollowing-v0", {"action_type": "continuous"}),
                                                  ("lmm/SightReading-v0", {"polyphony": "poly", "velocity": True}),
                                                  ("lmm/SightReading-v0", {"velocity": True, "reward": "symbolic"}),
                                                  ("lmm/PlayByEar-v0", {"polyphony": "poly", "reward": "symbolic"}),
                                                  ("lmm/Accompaniment-v0", {"dynamics": True}),
                                                  ("lmm/Accompaniment-v0", {"solo_part": "bottom", "tolerance": 0.1})]


@pytest.mark.parametrize("env_id,kwargs", CASES, ids=lambda x: str(x))
def test_native_vector_env_equals_sync_vector_env_bit_for_bit(env_id, kwargs):
    native = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point", pieces=PIECES, **kwargs)
    sync = gym.make_vec(env_id, num_envs=4, vectorization_mode="sync", pieces=PIECES, **kwargs)
    assert native.observation_space == sync.observation_space and native.action_space == sync.action_space
    a, _ = native.reset(seed=11)
    b, _ = sync.reset(seed=11)
    native.action_space.seed(3)
    ends = 0
    for _ in range(400):
        action = native.action_space.sample()
        a, ra, ta, tra, info = native.step(action)
        b, rb, tb, trb, sync_info = sync.step(action)
        assert all(a[k].tobytes() == b[k].tobytes() for k in a)
        assert np.array_equal(ra, rb) and np.array_equal(ta, tb) and np.array_equal(tra, trb)
        if ta.any() or tra.any():
            ends += 1
            ended = info["episode_metrics_index"]
            assert set(ended) == set(np.flatnonzero(ta | tra))
            for name, values in info["episode_metrics"].items():  # the same metrics, bit for bit
                assert values.tobytes() == np.asarray(sync_info["episode_metrics"][name][ended], float).tobytes()
    assert ends > 0  # episodes ended and were reset inside the run
    native.close()
    sync.close()


def test_native_score_following_refuses_bad_actions():
    envs = gym.make_vec("lmm/ScoreFollowing-v0", num_envs=3, vectorization_mode="vector_entry_point", pieces=PIECES)
    envs.reset(seed=0)
    for bad in (np.array([0, 1, 3]), np.array([0, 1]), np.array([0.5, 1.0, 1.0])):
        with pytest.raises(InvalidActionError):
            envs.step(bad)
    envs.step(np.array([0, 1, 2]))  # still usable


@pytest.mark.parametrize("env_id,kwargs", [("lmm/SightReading-v0", {}), ("lmm/SightReading-v0", {"polyphony": "poly"}),
                                            ("lmm/Accompaniment-v0", {})], ids=["mono", "poly", "accompaniment"])
def test_native_envs_refuse_bad_actions_and_take_whole_floats(env_id, kwargs):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", pieces=PIECES, **kwargs)
    envs.reset(seed=0)
    good = envs.action_space.sample()
    high = envs.single_action_space.n if "poly" not in kwargs.values() else 2
    for bad in (np.full_like(good, high), good[:1], good + 0.5, np.full(good.shape, np.nan), "x"):
        with pytest.raises(InvalidActionError):
            envs.step(bad)
    _, rewards, *_ = envs.step(good.astype(np.float32))  # SB3 hands MultiBinary actions over as floats
    assert rewards.shape == (2,)
    _, rewards, *_ = envs.step(good)
    assert rewards.shape == (2,)


def test_row_windows_cut_what_a_sliding_window_view_cuts():
    table = np.random.default_rng(0).integers(0, 256, (4, 2, 7, 60), dtype=np.uint8)
    rows, starts = np.array([3, 0, 3]), np.array([0, 17, 40])
    expected = np.lib.stride_tricks.sliding_window_view(table, 20, axis=3)[rows, :, :, starts]
    cut = as_pixels(row_windows(table, 20)[rows, :, :, starts])
    assert cut.shape == (3, 2, 7, 20) and np.array_equal(cut, expected)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        row_windows(table.astype(np.float32), 20)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        row_windows(table[..., ::2], 20)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_native_envs_refuse_a_number_of_envs_that_is_not_a_positive_integer(env_id):
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ConfigError, match="num_envs must be a positive integer"):
            gym.make_vec(env_id, num_envs=bad, vectorization_mode="vector_entry_point", pieces=PIECES)
