import gymnasium as gym
import pytest
import torch

import lmm_envs  # noqa: F401
from agents.lm.transcription import KeyNet, KeyNetConfig
from agents.localisation import build_extractors, main, place_errors, summary
from agents.pretrain import pretrain


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    pretrain(out / "lm", size="tiny", lm_steps=10, budgets=(2,), methods=("regression",), pool_limit=3,
             progress=False, probe=False)
    torch.manual_seed(0)
    KeyNet(KeyNetConfig(hidden=16, refine_steps=2)).save(out / "h.pt")
    return out


def test_each_comparison_is_scored_against_the_place_and_the_synth_beats_chance(models):
    space = gym.make("lmm/ScoreFollowing-v0").observation_space
    extractors = build_extractors(space, ["match", "hear", "lmm"], str(models / "h.pt"), str(models / "lm"),
                                  "regression", 2)
    rows = summary(place_errors(extractors, split="val", pieces=1, every=10))
    assert [r["features"] for r in rows] == ["match", "hear", "hear, onsets", "lmm"]
    assert all(r["steps"] == rows[0]["steps"] > 0 and 0 <= r["within_2"] <= r["within_5"] <= 1 for r in rows)
    assert rows[0]["within_5"] > 0.3  # the synth's spectra place the oracle's sound; a random column: 0.14


def test_bad_options_are_one_line_errors(models, capsys):
    assert main(["--features", "lmm", "--lm-dir", str(models / "none"), "--quiet"]) == 2
    assert "agents.pretrain" in capsys.readouterr().err
    assert main(["--features", "match", "--pieces", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
