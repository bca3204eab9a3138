import io
import json
import zipfile

import pytest

from agents.keep import OPTIMIZER_ENTRY, keep, main
from agents.train import train
from lmm_envs.errors import ConfigError


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("keep") / "run"
    train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=256, out=out, checkpoint_every=128,
          device="cpu", progress=False)
    return out


def _actions(path, n=40):
    import gymnasium as gym

    from lmm_envs.benchmark.checkpoints import load_sb3_agent

    env = gym.make("lmm/ScoreFollowing-v0", paired_budget=2)
    agent = load_sb3_agent(path, env)
    obs, info = env.reset(seed=3)
    actions = []
    for _ in range(n):
        action = agent.act(obs, info)
        actions.append(int(action))
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset()
    return actions


def test_a_kept_model_acts_as_the_run_did_without_the_optimisers_moments(finished_run, tmp_path):
    import torch
    from stable_baselines3 import PPO

    out = tmp_path / "kept.zip"
    settings = keep(finished_run, out)
    assert out.stat().st_size < 0.5 * (finished_run / "model.zip").stat().st_size
    with zipfile.ZipFile(out) as z:
        optimizer = torch.load(io.BytesIO(z.read(OPTIMIZER_ENTRY)), weights_only=True)
    assert optimizer["state"] == {} and optimizer["param_groups"]
    assert _actions(out) == _actions(finished_run / "model.zip")
    run = json.loads((finished_run / "run.json").read_text())
    assert settings == json.loads(out.with_suffix(".run.json").read_text())
    assert settings["track"] == run["track"] and settings["checkpoint_of"] == "model.zip"
    from agents.vec_env import make_training_env

    env = make_training_env("lmm/ScoreFollowing-v0", 2, seed=0, paired_budget=2)
    model = PPO.load(out, env=env, device="cpu")  # trains on from it, Adam afresh
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(64)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))


def test_a_checkpoint_is_kept_with_its_own_steps_and_track(finished_run, tmp_path):
    out = tmp_path / "early.zip"
    settings = keep(finished_run, out, at=128)
    assert settings["rl_steps"] == 128 and settings["steps"] == 128
    assert settings["checkpoint_of"] == "checkpoints/model_128_steps.zip"
    assert _actions(out, n=10) == _actions(finished_run / "checkpoints" / "model_128_steps.zip", n=10)


def test_what_cannot_be_kept_is_one_line_and_writes_nothing(finished_run, tmp_path, capsys):
    with pytest.raises(ConfigError, match="no checkpoint after 100 RL steps; it has: 128, 256"):
        keep(finished_run, tmp_path / "x.zip", at=100)
    with pytest.raises(ConfigError, match="has no run.json"):
        keep(tmp_path, tmp_path / "x.zip")
    assert main([str(finished_run), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "must end in .zip" in err
    assert not list(tmp_path.glob("x*"))
