"""Evaluate your own policy (a plain Python function) under the leaderboard protocol and write its result file.

    python examples/evaluate_your_policy.py
"""

import numpy as np

from lmm_envs.benchmark.evaluate import evaluate, write_result


def loudness_follower(obs):
    """Speeds up while the music gets louder, slows down while it fades: a policy a newcomer might try first."""
    audio = obs["audio"][0].astype(np.float32)
    change = audio[:, -5:].mean() - audio[:, -10:-5].mean()
    return 2 if change > 1.0 else 0 if change < -1.0 else 1


# limit=4 keeps this quick; without it the whole protocol runs and the result can go on the leaderboard
result = evaluate("lmm/ScoreFollowing-v0", loudness_follower, agent_name="loudness follower", limit=4,
                  progress=False)
score = result["normalised_score"]
print(f"normalised score {score['mean']:.3f} [{score['low']:.3f}, {score['high']:.3f}] over "
      f"{len(result['episodes'])} episodes (random 0, oracle 1)")
write_result(result, "loudness_follower.json")
print("wrote loudness_follower.json; lmm-envs leaderboard . --out LEADERBOARD.md makes a table of it")
