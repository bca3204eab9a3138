import subprocess
import sys
import zipfile

import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.benchmark.checkpoints import load_sb3_agent
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids

PIECES = piece_ids(split="test")[:1]


@pytest.fixture(scope="module")
def saved_ppo(tmp_path_factory):
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    path = tmp_path_factory.mktemp("ckpt") / "ppo.zip"
    model.save(path)
    return path, model


def test_saved_agent_reloads_safely_and_acts_the_same(saved_ppo):
    path, model = saved_ppo
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    agent = load_sb3_agent(path, env)
    obs, info = env.reset(seed=0)
    for _ in range(20):
        expected, _ = model.predict(obs, deterministic=True)
        action = agent.act(obs, info)
        assert np.array_equal(action, expected)
        obs, _, terminated, truncated, info = env.step(action)


def test_cli_evaluates_a_checkpoint(saved_ppo, tmp_path):
    path, _ = saved_ppo
    out = tmp_path / "ppo.json"
    run = subprocess.run([sys.executable, "-m", "lmm_envs.cli", "evaluate", "--agent", str(path), "--limit", "1",
                          "--quiet", "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import json

    result = json.loads(out.read_text())
    assert result["agent"]["kind"] == "sb3" and len(result["agent"]["checkpoint_sha256"]) == 64


class HomeMadeExtractor(__import__("agents.features", fromlist=["RawExtractor"]).RawExtractor):
    """A network class from outside the allowlist: loading it means running this file's code."""


def test_allowlisted_extractors_load_safely_and_others_need_trust(tmp_path):
    from stable_baselines3 import PPO

    from agents.features import RawExtractor

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    for cls, name in ((RawExtractor, "raw.zip"), (HomeMadeExtractor, "home.zip")):
        PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, device="cpu",
            policy_kwargs={"features_extractor_class": cls}).save(tmp_path / name)
    agent = load_sb3_agent(tmp_path / "raw.zip", env)  # no trust needed: agents.features is on the allowlist
    assert isinstance(agent.model.policy.features_extractor, RawExtractor)
    with pytest.raises(ConfigError, match="allowlist"):
        load_sb3_agent(tmp_path / "home.zip", env)
    assert isinstance(load_sb3_agent(tmp_path / "home.zip", env, trust=True).model.policy.features_extractor,
                      HomeMadeExtractor)


@pytest.mark.parametrize("content,message", [
    (b"not a zip at all", "not a Stable-Baselines3 checkpoint zip"),
    (None, "no 'data' and 'policy.pth'"),
])
def test_files_that_are_not_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "agent.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "hello")
    else:
        path.write_bytes(content)
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match=message):
        load_sb3_agent(path, env)
    run = subprocess.run([sys.executable, "-m", "lmm_envs.cli", "evaluate", "--agent", str(path), "--limit", "1"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and message.split("'")[0] in run.stderr and "Traceback" not in run.stderr
