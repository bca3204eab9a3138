"""SB3 PPO training speed on lmm/ScoreFollowing-v0 next to PPO on CartPole-v1, measured in the same run, and the
share of training time spent inside the environment.

    python benchmarks/train_throughput.py [--steps 8192] [--device cpu|cuda|auto] [--extractor raw|match|sb3]
                                          [--n-envs 1 16 64]

Both runs use PPO with the same policy/value heads (64x64) and rollout settings; ScoreFollowing's Dict
observation goes through the ``raw`` features extractor of ``agents.features`` (what ``python -m agents.train
--features raw`` trains; ``--extractor match``: the ``match`` features; ``--extractor sb3``: SB3's default
CombinedExtractor), CartPole's 4 numbers straight into
the heads. The env's share is the time spent in ``step``/``reset`` over the whole ``learn`` call.

Then PPO on ScoreFollowing with N envs per rollout, for each N of ``--n-envs``: over the native vector env
(``agents.vec_env.BatchedVecEnv``, what ``python -m agents.train --n-envs N`` uses) against ``DummyVecEnv`` over N
single envs, with the same network and 1024 steps per rollout, and both against the single-env figure above.
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


def train_vectorized(n_envs: int, batched: bool, steps: int, device: str, extractor: type | None) -> float:
    """PPO steps/s on ScoreFollowing over ``n_envs`` envs (native batched, or DummyVecEnv over single envs)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.vec_env import BatchedVecEnv
    from lmm_envs.music.corpus import piece_ids

    kwargs = {"pieces": piece_ids(split="test")[:8]}
    venv = BatchedVecEnv("lmm/ScoreFollowing-v0", n_envs, **kwargs) if batched else \
        DummyVecEnv([lambda: gym.make("lmm/ScoreFollowing-v0", **kwargs) for _ in range(n_envs)])
    venv.seed(0)
    policy_kwargs: dict = {"net_arch": [64, 64]}
    if extractor is not None:
        policy_kwargs["features_extractor_class"] = extractor
    model = PPO("MultiInputPolicy", venv, n_steps=max(1024 // n_envs, 1), batch_size=256, n_epochs=4, seed=0,
                device=device, policy_kwargs=policy_kwargs)
    model.learn(1024)  # warm-up
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8192)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--extractor", default="raw", choices=["raw", "match", "sb3"])
    ap.add_argument("--n-envs", type=int, nargs="*", default=[1, 16, 64], help="envs per rollout to compare")
    args = ap.parse_args()
    from lmm_envs.music.corpus import piece_ids

    extractor = None
    if args.extractor != "sb3":
        from agents.features import EXTRACTORS

        extractor = EXTRACTORS[args.extractor]

    cart, cart_share = train(gym.make("CartPole-v1"), "MlpPolicy", args.steps, args.device)
    music, music_share = train(gym.make("lmm/ScoreFollowing-v0", pieces=piece_ids(split="test")[:8]),
                               "MultiInputPolicy", args.steps, args.device, extractor)
    print(f"{'PPO on':<26}{'steps/s':>10}{'env share':>12}")
    print(f"{'CartPole-v1':<26}{cart:>10.0f}{cart_share:>12.1%}")
    print(f"{'lmm/ScoreFollowing-v0':<26}{music:>10.0f}{music_share:>12.1%}")
    print(f"ScoreFollowing ({args.extractor} extractor) trains at {music / cart:.2f}x CartPole's steps/s on {args.device}; "
          f"the env takes {music_share:.1%} of its training time")
    if args.n_envs:
        print(f"\n{'envs':>5}{'batched/s':>11}{'Dummy/s':>10}{'batched/Dummy':>15}{'batched/1 env':>15}")
    for n in args.n_envs:
        fast = train_vectorized(n, True, args.steps, args.device, extractor)
        slow = train_vectorized(n, False, args.steps, args.device, extractor)
        print(f"{n:>5}{fast:>11.0f}{slow:>10.0f}{fast / slow:>14.2f}x{fast / music:>14.2f}x")


if __name__ == "__main__":
    main()
