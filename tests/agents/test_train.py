import json

import pytest

from agents.train import load_config, main, track_of, train
from lmm_envs.errors import ConfigError


def test_ppo_run_writes_model_logs_checkpoints_and_settings(tmp_path):
    from stable_baselines3 import PPO

    out = tmp_path / "run"
    train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=128, out=out, checkpoint_every=64,
          device="cpu", progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["track"] == "8/100k" and run["env_kwargs"] == {"paired_budget": 2} and run["device"] == "cpu"
    assert list((out / "checkpoints").glob("model_*_steps.zip"))
    assert list((out / "tb").glob("PPO_*/events.out.tfevents.*"))
    PPO.load(out / "model.zip", device="cpu")


@pytest.mark.parametrize("env_id,algo", [("lmm/Accompaniment-v0", "dqn"), ("lmm/ScoreFollowing-v0", "sac"),
                                         ("lmm/SightReading-v0", "a2c")])
def test_each_algorithm_trains_where_its_action_space_fits(tmp_path, env_id, algo):
    train(env_id, algo, "raw", paired_budget=0, steps=64, out=tmp_path / algo, device="cpu", progress=False)
    assert (tmp_path / algo / "model.zip").exists()


def test_wrong_algorithm_for_the_space_and_bad_options_are_clear(tmp_path, capsys):
    with pytest.raises(ConfigError, match="SAC needs a continuous"):
        train("lmm/Accompaniment-v0", "sac", "raw", paired_budget=8, steps=8, out=tmp_path, progress=False)
    assert main(["--env", "lmm/ScoreFollowing-v0", "--features", "lmm", "--lm-dir", str(tmp_path / "none"),
                 "--steps", "8", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "agents.pretrain" in capsys.readouterr().err
    assert main(["--recurrent", "--algo", "dqn", "--steps", "8", "--out", str(tmp_path / "y"), "--quiet"]) == 2


def test_configs_and_tracks():
    assert load_config("lmm/ScoreFollowing-v0", "sac")["env_kwargs"] == {"action_type": "continuous"}
    assert track_of(8, 100_000) == "8/100k" and track_of(64, 1_000_000) == "64/1M" and track_of(0, 50_000) == "all/100k"


def test_lm_reward_needs_a_playing_env_and_pretrained_lms(tmp_path):
    with pytest.raises(ConfigError, match="agents.pretrain"):
        train("lmm/SightReading-v0", "ppo", "raw", paired_budget=8, steps=8, out=tmp_path, progress=False,
              reward="lm", lm_dir=str(tmp_path / "none"))
