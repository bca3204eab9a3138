"""Play by ear: hear a tune, press keys, and hear yourself; the template-matching transcriber against random.

    python examples/play_by_ear.py
"""

import gymnasium as gym

import lmm_envs  # noqa: F401  (registers the lmm/ ids)
from lmm_envs.benchmark.evaluate import run_episode

env = gym.make("lmm/PlayByEar-v0", split="test", polyphony="mono")
print(f"{env.unwrapped.n_keys} keys; action space {env.action_space}; observations {list(env.observation_space)}")
for agent in ("random", "transcriber", "oracle"):
    result = run_episode(env, agent, seed=0, options={"piece": 0, "variant": 0})
    m = result["metrics"]
    print(f"{agent:12s} note F1 {m['note_f1']:.3f}  frame F1 {m['frame_f1']:.3f}  "
          f"spectral distance {m['spectral_distance']:.3f}  mean reward {result['return'] / result['steps']:.3f}")
