"""Make an env, step it by hand with the OLTW follower, and print the episode's metrics.

    python examples/follow_a_piece.py [piece_id]
"""

import sys

import gymnasium as gym

import lmm_envs  # noqa: F401  (registers the lmm/ ids)
from lmm_envs.benchmark.registry import make_agent

piece = sys.argv[1] if len(sys.argv) > 1 else "bach/bwv66.6"
env = gym.make("lmm/ScoreFollowing-v0", pieces=[piece])
agent = make_agent("oltw", env)

obs, info = env.reset(seed=0)
agent.reset(obs, info)
total = 0.0
while True:
    obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
    total += reward
    if terminated or truncated:
        break
print(f"{piece}: return {total:.1f} over {info['frame']} frames")
for name, value in info["episode_metrics"].items():
    print(f"  {name:<20} {value:.3f}")
