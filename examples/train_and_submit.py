"""Train a Stable-Baselines3 agent and put it on the leaderboard.

A short run so that the example finishes in a minute; for a real entry train on the track's budget (e.g.
``--track 8/100k``: the 8 paired pieces, 100k steps) and evaluate on the whole protocol (drop ``--limit``).

    python examples/train_and_submit.py
"""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
from stable_baselines3 import PPO

import lmm_envs  # noqa: F401  (registers the lmm/ ids)

env = gym.make("lmm/ScoreFollowing-v0", paired_budget=8)  # track 8/...: only the first 8 paired pieces
model = PPO("MultiInputPolicy", env, n_steps=256, batch_size=64, seed=0, device="cpu")
model.learn(1024)
model.save("ppo_scorefollowing.zip")

Path("results").mkdir(exist_ok=True)  # --out writes into an existing folder
for command in (
    ["evaluate", "--agent", "ppo_scorefollowing.zip", "--name", "my ppo", "--track", "8/100k", "--limit", "2",
     "--quiet", "--out", "results/my_ppo.json"],
    ["evaluate", "--agent", "oltw", "--limit", "2", "--quiet", "--out", "results/oltw.json"],
    ["leaderboard", "results", "--out", "LEADERBOARD.md", "--html", "leaderboard.html"],
):
    print("$ lmm-envs " + " ".join(command))
    subprocess.run([sys.executable, "-m", "lmm_envs.cli", *command], check=True)
print(Path("LEADERBOARD.md").read_text())
