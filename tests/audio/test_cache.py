import multiprocessing as mp
import os

import numpy as np
import pytest

from lmm_envs.audio.cache import Cache, make_key


def build():
    return {"x": np.arange(1000, dtype=np.float32), "y": np.array("text")}


def test_round_trip_and_key_changes_with_parameters(tmp_path):
    cache = Cache(tmp_path)
    key = make_key("demo", a=1)
    assert make_key("demo", a=1) == key != make_key("demo", a=2)
    first = cache.get_or_create(key, build)
    again = Cache(tmp_path).get(key)
    assert np.array_equal(again["x"], first["x"]) and str(again["y"]) == "text"


def test_entries_read_back_as_read_only_views_of_every_dtype_and_shape(tmp_path):
    arrays = {"spectrogram": np.arange(12, dtype=np.float32).reshape(3, 4), "onsets": np.array([1, -2], np.int64),
              "name": np.array("text"), "none": np.zeros((0, 5), np.uint8),
              "transposed": np.arange(6, dtype=np.int16).reshape(2, 3).T, "flag": np.array([True, False])}
    key = make_key("demo", dtypes=1)
    Cache(tmp_path).put(key, arrays)
    back = Cache(tmp_path).get(key)
    assert list(back) == list(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        assert np.array_equal(back[name], value)
    with pytest.raises(ValueError, match="read-only"):  # a prepared piece is shared by every env that draws it
        back["spectrogram"][0, 0] = 1.0


def test_an_entry_with_a_valid_digest_but_a_broken_table_is_rebuilt(tmp_path):
    import hashlib

    from lmm_envs.audio import cache as cache_module

    cache = Cache(tmp_path)
    key = make_key("demo", a=3)
    payload = (5).to_bytes(8, "little") + b"[[[[["  # a table that is not JSON, sealed with a right digest
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(cache_module.MAGIC + hashlib.sha256(payload).digest() + payload)
    assert np.array_equal(cache.get_or_create(key, build)["x"], build()["x"]) and cache.rebuilt == 1


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip"])
def test_damaged_entries_are_detected_and_rebuilt(tmp_path, damage):
    cache = Cache(tmp_path)
    key = make_key("demo", a=1)
    cache.get_or_create(key, build)
    path = cache.path(key)
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "zero":
        path.write_bytes(b"")
    else:
        blob[-100] ^= 0x01
        path.write_bytes(bytes(blob))
    fresh = Cache(tmp_path)
    assert fresh.get(key) is None and fresh.rebuilt == 1 and not path.exists()
    assert np.array_equal(fresh.get_or_create(key, build)["x"], build()["x"])
    assert path.exists()


def test_unwritable_cache_root_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    cache = Cache(blocker / "cache")
    key = make_key("demo", a=1)
    with pytest.warns(RuntimeWarning, match="cannot be written to"):
        arrays = cache.get_or_create(key, build)
    assert np.array_equal(cache.get(key)["x"], arrays["x"])
    assert not list(tmp_path.glob("**/*.tmp"))


def test_full_cache_disk_falls_back_to_memory_mid_run(tmp_path, monkeypatch):
    """A disk that fills up while an env is running: the episode goes on, the entry lives in memory."""
    import errno

    import gymnasium as gym

    import lmm_envs  # noqa: F401
    from lmm_envs.audio import cache as cache_module

    def no_space(fd, blob):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("LMM_ENVS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_module, "_write", no_space)
    env = gym.make("lmm/ScoreFollowing-v0", pieces=[small_piece_score()])
    with pytest.warns(RuntimeWarning, match="No space left on device"):
        env.reset(seed=0)
    for _ in range(20):
        env.step(env.action_space.sample())
    assert not list((tmp_path / "cache").glob("**/*.tmp"))


def small_piece_score():
    from lmm_envs.music.score import Score, TempoMap

    return Score(pitch=[60, 64, 67, 72], onset=[0.0, 1.0, 2.0, 3.0], duration=[1.0] * 4, velocity=[80] * 4,
                 part=[0] * 4, tempo=TempoMap.constant(100.0), title="full-disk")


def _prepare_in_process(root):
    os.environ["LMM_ENVS_CACHE"] = root
    from lmm_envs.pieces import prepare_piece

    piece = prepare_piece("bach/bwv66.6", 1.0, seed=5)
    return piece.spectrogram.tobytes()


def test_eight_processes_preparing_at_once_agree(tmp_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(8) as pool:
        results = pool.map(_prepare_in_process, [str(tmp_path)] * 8)
    assert len(set(results)) == 1
    entries = [p for p in tmp_path.glob("**/*") if p.is_file()]
    assert not [p for p in entries if p.suffix == ".tmp"]
    assert len([p for p in entries if p.name.startswith("piece-")]) == 1
    assert all(Cache(tmp_path).get(p.stem) is not None for p in entries)
