import json

import numpy as np
import pytest

from lmm_envs.benchmark.evaluate import evaluate, protocol_episodes, result_digest, write_result
from lmm_envs.benchmark.protocol import (
    PROTOCOLS,
    TRACKS,
    bootstrap_interval,
    check_track,
    get_protocol,
    normalised,
)
from lmm_envs.envs import ENV_IDS
from lmm_envs.errors import ConfigError

ENV = "lmm/ScoreFollowing-v0"


def test_every_registered_env_has_a_protocol_with_tracks():
    assert set(PROTOCOLS) == set(ENV_IDS)
    assert {"8/100k", "64/1M", "all/100k"} <= set(TRACKS)
    with pytest.raises(ConfigError, match="unknown track"):
        check_track("9/5")
    with pytest.raises(ConfigError, match="no evaluation protocol"):
        get_protocol("lmm/Nothing-v0")


def test_normalised_score_of_oracle_is_one_and_of_random_zero():
    assert evaluate(ENV, "oracle", limit=2, progress=False)["normalised_score"]["mean"] == 1.0
    assert evaluate(ENV, "random", limit=2, progress=False)["normalised_score"]["mean"] == 0.0
    assert normalised(0.5, 0.0, 1.0) == 0.5 and np.isnan(normalised(0.5, 1.0, 1.0))


def test_same_agent_same_result_file_in_one_process_or_several(tmp_path):
    first = evaluate(ENV, "oltw", limit=2, progress=False)
    again = evaluate(ENV, "oltw", limit=2, progress=False)
    parallel = evaluate(ENV, "oltw", limit=2, progress=False, workers=2)
    assert first == again and first["digest"] == parallel["digest"]
    write_result(first, tmp_path / "r.json")
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert result_digest(loaded) == loaded["digest"] == first["digest"]


def test_ray_gives_the_same_result_file_as_local_workers(local_ray):
    local = evaluate(ENV, "oltw", limit=2, progress=False, workers=2)
    on_ray = evaluate(ENV, "oltw", limit=2, progress=False, ray_address=local_ray)
    assert on_ray == local


def test_result_file_has_the_fields_of_the_design():
    result = evaluate(ENV, "oltw", limit=2, progress=False)
    for key in ("env_id", "env_version", "lmm_envs_version", "data_hash", "track", "agent", "episodes", "aggregate",
                "normalised_score", "reference", "protocol"):
        assert key in result
    assert result["track"] == "custom" and not result["on_leaderboard"]  # --limit leaves the tracks
    assert len(result["episodes"]) == 2 * len(get_protocol(ENV).variants)
    agg = result["aggregate"]["within_100ms"]
    assert agg["low"] <= agg["mean"] <= agg["high"]
    assert agg["mean"] == pytest.approx(np.mean([e["metrics"]["within_100ms"] for e in result["episodes"]]))


def test_a_plain_function_is_evaluated_under_the_protocol():
    keep_tempo = lambda obs, action=1: action  # noqa: E731  (a default argument is not the info dict)
    result = evaluate(ENV, keep_tempo, agent_name="steady", limit=1, progress=False)
    assert result["agent"] == {"name": "steady", "kind": "python"}
    with pytest.raises(ConfigError, match="workers"):
        evaluate(ENV, keep_tempo, limit=1, progress=False, workers=2)
    with pytest.raises(ConfigError, match="Ray need the agent as a name"):
        evaluate(ENV, keep_tempo, limit=1, progress=False, ray_address="local")


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(1).normal(size=50)
    a, b = bootstrap_interval(x), bootstrap_interval(x)
    assert a == b and a["low"] < a["mean"] < a["high"]
    assert np.isnan(bootstrap_interval([np.nan])["mean"])


def test_an_expressiveness_env_arg_replaces_the_protocols_level():
    episodes = protocol_episodes("lmm/Accompaniment-v0", limit=1, env_kwargs={"expressiveness": 0.0})
    assert episodes and {e["expressiveness"] for e in episodes} == {0.0}
    assert {e["expressiveness"] for e in protocol_episodes("lmm/Accompaniment-v0", limit=1)} == {1.0}


def test_score_following_protocol_runs_episodes_to_the_end_and_reports_loss():
    proto = get_protocol(ENV)
    assert proto.version == 2 and proto.env_kwargs["terminate_on_lost"] is False
    assert {"lost_share", "tracked_to_end"} <= set(proto.metrics)
    assert get_protocol("lmm/SightReading-v0").env_kwargs.get("terminate_on_lost") is None


def test_a_lost_follower_runs_to_the_end_under_the_protocol():
    result = evaluate(ENV, lambda obs, info: 0, agent_name="stops", limit=1, progress=False)  # slows to a halt
    episode = result["episodes"][0]
    assert episode["metrics"]["tracked_to_end"] == 0.0 and episode["metrics"]["lost_share"] > 0.3
    assert episode["steps"] > 100


def test_tracks_are_upper_bounds_on_pairs_and_steps():
    from lmm_envs.benchmark.protocol import within

    assert within("8/100k", "8/100k") and within("8/100k", "all/1M") and within("64/100k", "64/1M")
    assert not within("64/100k", "8/1M") and not within("8/1M", "all/100k")
    assert not within("baseline", "8/100k") and not within("custom", "all/1M")


def test_a_subset_of_the_protocol_keeps_the_splits_mix_of_collections():
    """--limit N takes N pieces spread over the protocol's list, so a quick measurement is not all Bach chorales
    (the test split lists its chorales first); --subset first keeps the first N, to reproduce earlier figures."""
    from lmm_envs.benchmark.protocol import subset_indices
    from lmm_envs.music.corpus import piece_ids

    assert subset_indices(153, 40) == sorted(set(subset_indices(153, 40))) and len(subset_indices(153, 40)) == 40
    assert subset_indices(153, 40)[0] == 0 and subset_indices(153, 40)[-1] == 152
    assert subset_indices(153, 40, "first") == list(range(40))
    assert subset_indices(5, 0) == subset_indices(5, 9) == list(range(5))
    with pytest.raises(ConfigError, match="subset must be one of spread, first"):
        subset_indices(5, 2, "random")
    test = piece_ids(split="test")
    spread = {test[i].split("/")[0] for i in subset_indices(len(test), 40)}
    first = {test[i].split("/")[0] for i in subset_indices(len(test), 40, "first")}
    assert spread == {"bach", "ryans"} and first == {"bach"}

    episodes = protocol_episodes(ENV, limit=3)
    assert [e["piece_index"] for e in episodes[::2]] == [0, 76, 152]
    assert [e["piece_index"] for e in protocol_episodes(ENV, limit=3, subset="first")[::2]] == [0, 1, 2]


def test_a_result_file_says_how_its_subset_was_chosen():
    spread = evaluate(ENV, "keep_tempo", limit=2, progress=False)
    first = evaluate(ENV, "keep_tempo", limit=2, progress=False, subset="first")
    assert spread["settings"]["subset"] == "spread" and first["settings"]["subset"] == "first"
    assert [e["piece_index"] for e in spread["episodes"]] == [0, 0, 152, 152]
    assert spread["episodes"][-1]["piece_id"].startswith("ryans/")
    assert first["episodes"][-1]["piece_id"].startswith("bach/")
    with pytest.raises(ConfigError, match="subset must be one of"):
        evaluate(ENV, "keep_tempo", limit=2, progress=False, subset="last")
