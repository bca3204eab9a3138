"""Every env option with a bad value is one clear ConfigError that names the option."""

import gymnasium as gym
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids, piece_info

CHORALE = sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:1]


@pytest.mark.filterwarnings("ignore:.*render_mode.*:UserWarning")  # gymnasium's own note before ours
@pytest.mark.parametrize("env_id,kwargs,message", [
    ("lmm/ScoreFollowing-v0", {"action_type": "sideways"}, "action_type"),
    ("lmm/ScoreFollowing-v0", {"reward_width": 0}, "reward_width"),
    ("lmm/ScoreFollowing-v0", {"render_mode": "ansi"}, "render_mode"),
    ("lmm/ScoreFollowing-v0", {"performances_per_piece": 0}, "performances_per_piece"),
    ("lmm/ScoreFollowing-v0", {"synth": "theremin"}, "synth"),
    ("lmm/Accompaniment-v0", {"dynamics": "loud"}, "dynamics"),
    ("lmm/Accompaniment-v0", {"solo_part": 1.5}, "solo_part"),
    ("lmm/Accompaniment-v0", {"solo_part": "tenor voice"}, "no piece suits"),
    ("lmm/SightReading-v0", {"velocity": "yes", "polyphony": "poly"}, "velocity"),
    ("lmm/PlayByEar-v0", {"key_range": (10, 200), "polyphony": "poly"}, "key_range"),
])
def test_bad_option_values_are_refused_with_their_name(env_id, kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        gym.make(env_id, pieces=CHORALE, **kwargs)
    assert "\n" not in str(err.value)
