"""SB3 PPO training speed on lmm/ScoreFollowing-v0 next to PPO on CartPole-v1, measured in the same run, and the
share of training time spent inside the environment.

    python benchmarks/train_throughput.py [--steps 8192] [--device cpu|cuda|auto]

Both runs use PPO with the same policy/value heads (64x64) and rollout settings; ScoreFollowing's Dict
observation goes through SB3's default CombinedExtractor (a small CNN per image window), CartPole's 4 numbers
straight into the heads. The env's share is the time spent in ``step``/``reset`` over the whole ``learn`` call.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import lmm_envs  # noqa: F401


class StepTimer(gym.Wrapper):
    """Adds up the wall time spent in the wrapped env's step and reset."""

    def __init__(self, env):
        super().__init__(env)
        self.seconds = 0.0

    def step(self, action):
        start = time.perf_counter()
        out = self.env.step(action)
        self.seconds += time.perf_counter() - start
        return out

    def reset(self, **kwargs):
        start = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.seconds += time.perf_counter() - start
        return out


def train(env: gym.Env, policy: str, steps: int, device: str) -> tuple[float, float]:
    from stable_baselines3 import PPO

    timer = StepTimer(env)
    model = PPO(policy, timer, n_steps=1024, batch_size=256, n_epochs=4, seed=0, device=device,
                policy_kwargs={"net_arch": [64, 64]})
    model.learn(256)  # warm-up: pieces prepared, kernels loaded
    timer.seconds = 0.0
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    return steps / elapsed, timer.seconds / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8192)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from lmm_envs.music.corpus import piece_ids

    cart, cart_share = train(gym.make("CartPole-v1"), "MlpPolicy", args.steps, args.device)
    music, music_share = train(gym.make("lmm/ScoreFollowing-v0", pieces=piece_ids(split="test")[:8]),
                               "MultiInputPolicy", args.steps, args.device)
    print(f"{'PPO on':<26}{'steps/s':>10}{'env share':>12}")
    print(f"{'CartPole-v1':<26}{cart:>10.0f}{cart_share:>12.1%}")
    print(f"{'lmm/ScoreFollowing-v0':<26}{music:>10.0f}{music_share:>12.1%}")
    print(f"ScoreFollowing trains at {music / cart:.2f}x CartPole's steps/s on {args.device}; "
          f"the env takes {music_share:.1%} of its training time")


if __name__ == "__main__":
    main()
