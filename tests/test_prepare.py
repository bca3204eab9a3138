"""Preparing what the envs draw: the same renderings, once, and an env that says when a split was not prepared."""

import warnings

import gymnasium as gym
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.envs import base
from lmm_envs.errors import UnknownPieceError, UnpreparedWarning
from lmm_envs.pieces import PERFORMANCES_PER_PIECE, renderings_built
from lmm_envs.prepare import prepare_pieces

PIECE = "bach/bwv66.6"


def test_an_env_draws_only_the_renderings_data_prepare_makes_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LMM_ENVS_CACHE", str(tmp_path / "cache"))
    report = prepare_pieces([PIECE], expressiveness=0.61, progress=False)
    assert report.renderings == report.built == PERFORMANCES_PER_PIECE and report.audio_seconds > 10
    built = renderings_built()
    env = gym.make("lmm/ScoreFollowing-v0", pieces=[PIECE], expressiveness=0.61)
    for seed in range(3 * PERFORMANCES_PER_PIECE):
        env.reset(seed=seed)
    assert renderings_built() == built  # every reset found its rendering prepared
    again = prepare_pieces([PIECE], expressiveness=0.61, progress=False)
    assert again.built == 0 and again.renderings == PERFORMANCES_PER_PIECE


def test_an_unprepared_split_is_named_once_with_the_command_that_prepares_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LMM_ENVS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base, "_UNPREPARED_TOLD", [False])
    env = gym.make("lmm/ScoreFollowing-v0", split="test", expressiveness=0.37, expressive_style="gentle")
    with pytest.warns(UnpreparedWarning) as caught:
        env.reset(seed=0)
    (message,) = [str(w.message) for w in caught if w.category is UnpreparedWarning]
    assert "lmm-envs data prepare --split test --expressiveness 0.37 --style gentle" in message
    assert "\n" not in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnpreparedWarning)
        env.reset(seed=1)  # built again, but said once


def test_a_named_cache_directory_is_used_and_the_callers_environment_left_alone(monkeypatch, tmp_path):
    import os

    monkeypatch.setenv("LMM_ENVS_CACHE", str(tmp_path / "mine"))
    report = prepare_pieces([PIECE], variants=1, expressiveness=0.71, cache_root=tmp_path / "named", progress=False)
    assert report.built == 1 and len(list((tmp_path / "named").glob("*/piece-*.lmmc"))) == 1
    assert os.environ["LMM_ENVS_CACHE"] == str(tmp_path / "mine") and not (tmp_path / "mine").exists()


def test_prepare_refuses_unknown_pieces_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setenv("LMM_ENVS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UnknownPieceError):
        prepare_pieces([PIECE, "bach/nope"], progress=False)
    assert not (tmp_path / "cache").exists()


def test_ray_prepares_into_the_cache_the_driver_names(local_ray, tmp_path, monkeypatch):
    root = tmp_path / "shared-cache"
    report = prepare_pieces([PIECE, "ryans/42dHighlandRegimentStrathspey"], variants=2, expressiveness=0.83,
                            ray_address=local_ray, cache_root=root, progress=False)
    assert report.built == 4 and len(list(root.glob("*/piece-*.lmmc"))) == 4
    monkeypatch.setenv("LMM_ENVS_CACHE", str(root))
    local = prepare_pieces([PIECE, "ryans/42dHighlandRegimentStrathspey"], variants=2, expressiveness=0.83,
                           progress=False)
    assert local.built == 0 and local.audio_seconds == report.audio_seconds


@pytest.mark.parametrize("env_id", ["lmm/Accompaniment-v0", "lmm/SightReading-v0"])
def test_a_playing_env_names_the_playing_targets_it_had_to_build_and_is_quiet_once_they_are_prepared(
        env_id, fresh_process, tmp_path):
    options = {"pieces": [PIECE], "performances_per_piece": 1}
    if env_id == "lmm/SightReading-v0":
        options["polyphony"] = "poly"
    fresh_process(tmp_path / "renderings")
    prepare_pieces([PIECE], variants=1, progress=False)  # the rendering only, not what a playing env reads besides
    fresh_process(tmp_path / "renderings")
    with pytest.warns(UnpreparedWarning) as caught:
        gym.make(env_id, **options).reset(seed=0)
    (message,) = [str(w.message) for w in caught if w.category is UnpreparedWarning]
    assert "besides its audio" in message and "\n" not in message
    assert message.endswith("lmm-envs data prepare --split train --variants 1 --playing-targets")
    fresh_process(tmp_path / "everything")
    prepare_pieces([PIECE], variants=1, playing_targets=True, progress=False)
    fresh_process(tmp_path / "everything")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnpreparedWarning)
        gym.make(env_id, **options).reset(seed=0)
