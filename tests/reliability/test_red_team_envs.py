"""Red-team round, the environments: options checked by type for every registered id, reset options and actions
that used to crash or be accepted are one clear error."""

from __future__ import annotations

import gymnasium as gym
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.envs import ENV_IDS
from lmm_envs.errors import ConfigError, InvalidActionError
from lmm_envs.music.corpus import piece_ids, piece_info

CHORALE = sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:1]


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
@pytest.mark.parametrize("option,value", [
    ("expressiveness", "abc"), ("expressiveness", [1]), ("expressiveness", float("nan")), ("expressiveness", 50),
    ("performances_per_piece", 2.5), ("performances_per_piece", True), ("paired_budget", "8"),
    ("split", 3), ("synth", 7), ("pieces", 5),
])
def test_shared_options_of_the_wrong_type_name_the_option(env_id, option, value):
    with pytest.raises(ConfigError, match=option) as err:
        gym.make(env_id, **({"pieces": CHORALE} if option != "pieces" else {}), **{option: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("env_id,option,value", [
    ("lmm/ScoreFollowing-v0", "terminate_on_lost", "maybe"),
    ("lmm/ScoreFollowing-v0", "terminate_on_lost", 1),
    ("lmm/ScoreFollowing-v0", "reward_width", "wide"),
    ("lmm/ScoreFollowing-v0", "lost_tolerance", float("inf")),
    ("lmm/ScoreFollowing-v0", "lost_patience", 2.5),
    ("lmm/Accompaniment-v0", "tolerance", "0.3"),
    ("lmm/Accompaniment-v0", "solo_part", [1]),
    ("lmm/SightReading-v0", "velocity", "yes"),
    ("lmm/PlayByEar-v0", "key_range", "21-108"),
    ("lmm/PlayByEar-v0", "key_range", [21, 50, 108]),
])
def test_task_options_of_the_wrong_type_name_the_option(env_id, option, value):
    with pytest.raises(ConfigError, match=f"option {option}"):
        gym.make(env_id, pieces=CHORALE, **{option: value})


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_render_mode_human_is_refused_before_gymnasium_wraps_it(env_id):
    # gym.make turns "human" into rgb_array + its pygame window; the CLI and evaluate check options first
    from lmm_envs.envs.options import check_env_options

    with pytest.raises(ConfigError, match="render_mode must be one of"):
        check_env_options(env_id, {"render_mode": "human"})


def test_the_split_must_be_one_of_the_three():
    with pytest.raises(ConfigError, match="split must be one of train, val, test"):
        gym.make("lmm/ScoreFollowing-v0", split="")


def test_a_solo_part_that_no_piece_has_says_so():
    with pytest.raises(ConfigError, match="solo_part 99 is not a part of any of them"):
        gym.make("lmm/Accompaniment-v0", split="test", solo_part=99)


@pytest.mark.parametrize("options,message", [
    ({"variant": "abc"}, "variant"), ({"variant": float("nan")}, "variant"), ({"variant": 10**9}, "variant"),
    ({"variant": -5}, "variant"), ({"variant": 1.7}, "variant"), ({"variant": True}, "variant"),
    ([1, 2], "must be a dict"), ("piece", "must be a dict"), ({"piece": 2.5}, "piece"), ({"piece": True}, "piece"),
    ({"piece": [0]}, "piece"), ({"tempo": 1}, "unknown reset option"),
])
def test_bad_reset_options_are_refused(options, message):
    env = gym.make("lmm/ScoreFollowing-v0", pieces=CHORALE)
    with pytest.raises(ConfigError, match=message):
        env.reset(seed=0, options=options)
    env.reset(seed=0, options={"piece": 0, "variant": 7})  # the last rendering of the default 8 is fine


@pytest.mark.parametrize("env_id", ["lmm/ScoreFollowing-v0", "lmm/Accompaniment-v0"])
@pytest.mark.parametrize("action", [float("inf"), float("-inf"), float("nan"), 10**30, "1", None])
def test_discrete_actions_that_are_not_small_integers_are_invalid_actions(env_id, action):
    env = gym.make(env_id, pieces=CHORALE)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step(action)
