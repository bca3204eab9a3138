"""SB3 PPO training speed on lmm/ScoreFollowing-v0 next to PPO on CartPole-v1, measured in the same run, and the
share of training time spent inside the environment.

    python benchmarks/train_throughput.py [--steps 8192] [--device cpu|cuda|auto] [--extractor raw|sb3]

Both runs use PPO with the same policy/value heads (64x64) and rollout settings; ScoreFollowing's Dict
observation goes through the ``raw`` features extractor of ``agents.features`` (what ``python -m agents.train
--features raw`` trains; ``--extractor sb3``: SB3's default CombinedExtractor), CartPole's 4 numbers straight into
the heads. The env's share is the time spent in ``step``/``reset`` over the whole ``learn`` call.
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


def train(env: gym.Env, policy: str, steps: int, device: str, extractor: type | None = None) -> tuple[float, float]:
    from stable_baselines3 import PPO

    timer = StepTimer(env)
    policy_kwargs: dict = {"net_arch": [64, 64]}
    if extractor is not None:
        policy_kwargs["features_extractor_class"] = extractor
    model = PPO(policy, timer, n_steps=1024, batch_size=256, n_epochs=4, seed=0, device=device,
                policy_kwargs=policy_kwargs)
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
    ap.add_argument("--extractor", default="raw", choices=["raw", "sb3"])
    args = ap.parse_args()
    from lmm_envs.music.corpus import piece_ids

    extractor = None
    if args.extractor == "raw":
        from agents.features import RawExtractor as extractor

    cart, cart_share = train(gym.make("CartPole-v1"), "MlpPolicy", args.steps, args.device)
    music, music_share = train(gym.make("lmm/ScoreFollowing-v0", pieces=piece_ids(split="test")[:8]),
                               "MultiInputPolicy", args.steps, args.device, extractor)
    print(f"{'PPO on':<26}{'steps/s':>10}{'env share':>12}")
    print(f"{'CartPole-v1':<26}{cart:>10.0f}{cart_share:>12.1%}")
    print(f"{'lmm/ScoreFollowing-v0':<26}{music:>10.0f}{music_share:>12.1%}")
    print(f"ScoreFollowing ({args.extractor} extractor) trains at {music / cart:.2f}x CartPole's steps/s on {args.device}; "
          f"the env takes {music_share:.1%} of its training time")


if __name__ == "__main__":
    main()
