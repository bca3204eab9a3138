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


def _score_checkpoints(run, scores: dict[int, float], pieces=("val/a", "val/b")):
    from agents.validation import CHECKPOINT_CURVE

    points = {f"model_{n}_steps.zip": [n, s] for n, s in scores.items()}
    (run / CHECKPOINT_CURVE).write_text(json.dumps({"env_id": "lmm/ScoreFollowing-v0", "split": "val",
                                                    "pieces": list(pieces), "points": points}))


def test_the_checkpoint_best_on_val_is_kept_with_what_chose_it(finished_run, tmp_path):
    _score_checkpoints(finished_run, {128: 0.41, 256: 0.12})
    out = tmp_path / "best.zip"
    settings = keep(finished_run, out, best=True)
    assert settings["checkpoint_of"] == "checkpoints/model_128_steps.zip"
    assert settings["chosen_on_val"] == {"split": "val", "pieces": ["val/a", "val/b"], "normalised_score": 0.41,
                                         "env_steps": 128, "checkpoints_scored": 2, "rl_steps": 128}
    run = json.loads((finished_run / "run.json").read_text())  # choosing took the whole run: its steps and track
    assert (settings["steps"], settings["track"]) == (run["steps"], run["track"])
    assert json.loads(out.with_suffix(".run.json").read_text())["chosen_on_val"]["normalised_score"] == 0.41
    assert _actions(out, n=10) == _actions(finished_run / "checkpoints" / "model_128_steps.zip", n=10)
    _score_checkpoints(finished_run, {128: 0.3, 256: 0.3})  # equals: the earlier, fewer steps
    assert keep(finished_run, tmp_path / "tie.zip", best=True)["chosen_on_val"]["rl_steps"] == 128
    _score_checkpoints(finished_run, {128: float("nan"), 256: 0.05})  # an undefined score is never chosen
    assert keep(finished_run, tmp_path / "nan.zip", best=True)["chosen_on_val"]["rl_steps"] == 256


def test_best_on_val_refuses_in_one_line_what_it_cannot_choose_from(finished_run, tmp_path, capsys):
    from agents.validation import CHECKPOINT_CURVE

    (finished_run / CHECKPOINT_CURVE).unlink(missing_ok=True)
    assert main([str(finished_run), "--out", str(tmp_path / "x.zip"), "--best-on-val"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--from-checkpoints" in err
    _score_checkpoints(finished_run, {128: 0.2})
    with pytest.raises(ConfigError, match="give one of them"):
        keep(finished_run, tmp_path / "x.zip", at=256, best=True)
    _score_checkpoints(finished_run, {128: float("nan")})
    with pytest.raises(ConfigError, match="no checkpoint with a finite val score"):
        keep(finished_run, tmp_path / "x.zip", best=True)
    assert not list(tmp_path.glob("x*"))
    (finished_run / CHECKPOINT_CURVE).unlink()
