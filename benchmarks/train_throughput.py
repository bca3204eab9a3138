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
With the ``raw`` extractor the single env is also trained with its convolutions in the default memory layout
(``channels_last=False``: the network as it trained before channels-last became its default), the reference the
batched runs' speed-up is read against.

``--update-profile``: where PPO's update spends its time instead: one minibatch (256 observations) through the
policy forward and backward with an Adam step, in float32 and under bfloat16 autocast, and each part of the
features extractor alone (forward and backward), so that what batching the env cannot remove is measured.
"""

from __future__ import annotations

import argparse
import inspect
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


def _policy_kwargs(extractor: type | None, extractor_kwargs: dict | None = None) -> dict:
    policy_kwargs: dict = {"net_arch": [64, 64]}
    if extractor is not None:
        policy_kwargs["features_extractor_class"] = extractor
        policy_kwargs["features_extractor_kwargs"] = dict(extractor_kwargs or {})
    return policy_kwargs


def train(env: gym.Env, policy: str, steps: int, device: str, extractor: type | None = None,
          extractor_kwargs: dict | None = None) -> tuple[float, float]:
    from stable_baselines3 import PPO

    timer = StepTimer(env)
    policy_kwargs = _policy_kwargs(extractor, extractor_kwargs)
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
    policy_kwargs = _policy_kwargs(extractor)
    model = PPO("MultiInputPolicy", venv, n_steps=max(1024 // n_envs, 1), batch_size=256, n_epochs=4, seed=0,
                device=device, policy_kwargs=policy_kwargs)
    model.learn(1024)  # warm-up
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def _seconds(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def update_profile(extractor: type, batch: int = 256) -> None:
    """Milliseconds per PPO minibatch of ``batch`` ScoreFollowing observations, whole and by part."""
    import numpy as np
    import torch
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    env = gym.make("lmm/ScoreFollowing-v0")
    space = env.observation_space
    space.seed(0)
    obs = {k: torch.as_tensor(np.stack([space[k].sample() for _ in range(batch)])).float() for k in space.spaces}
    actions = torch.zeros(batch, dtype=torch.long)
    layouts = [{"channels_last": False}, {}] if "channels_last" in inspect.signature(extractor).parameters else [{}]
    for extractor_kwargs in layouts:
        policy = MultiInputActorCriticPolicy(space, env.action_space, lambda _: 3e-4, net_arch=[64, 64],
                                             features_extractor_class=extractor,
                                             features_extractor_kwargs=extractor_kwargs)
        _profile_policy(policy, obs, actions, batch, extractor_kwargs)


def _profile_policy(policy, obs: dict, actions, batch: int, extractor_kwargs: dict) -> None:
    import torch

    def update(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            values, log_prob, entropy = policy.evaluate_actions(obs, actions)
            loss = values.float().mean() + log_prob.float().mean() + entropy.float().mean()
        policy.optimizer.zero_grad()
        loss.backward()
        policy.optimizer.step()

    whole = _seconds(lambda: update(False))
    name = type(policy.features_extractor).__name__ + "".join(f", {k}={v}" for k, v in extractor_kwargs.items())
    print(f"\nPPO minibatch of {batch}, {name}, {torch.get_num_threads()} torch threads, "
          f"{sum(p.numel() for p in policy.parameters()):,} parameters")
    print(f"{'forward + backward + Adam, float32':<48}{whole * 1e3:>8.1f} ms")
    print(f"{'the same under bfloat16 autocast':<48}{_seconds(lambda: update(True)) * 1e3:>8.1f} ms")
    parts = getattr(policy.features_extractor, "branches", {})
    for key, part in parts.items():
        if not any(True for _ in part.parameters()):
            continue  # a flattened key: nothing to learn, nothing to time
        ms = _seconds(lambda p=part, k=key: p(obs[k]).sum().backward()) * 1e3
        print(f"{'extractor branch ' + repr(key) + ', forward + backward':<48}{ms:>8.1f} ms")
    print(f"per 1024 env steps at 4 epochs the update alone takes {4 * 1024 / batch * whole:.2f} s, "
          f"a ceiling of {1024 / (4 * 1024 / batch * whole):.0f} PPO steps/s whatever the env costs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8192)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--extractor", default="raw", choices=["raw", "match", "sb3"])
    ap.add_argument("--n-envs", type=int, nargs="*", default=[1, 16, 64], help="envs per rollout to compare")
    ap.add_argument("--update-profile", action="store_true", help="profile one PPO minibatch update instead")
    args = ap.parse_args()
    from lmm_envs.music.corpus import piece_ids

    extractor = None
    if args.extractor != "sb3":
        from agents.features import EXTRACTORS

        extractor = EXTRACTORS[args.extractor]
    if args.update_profile:
        if extractor is None:
            raise SystemExit("--update-profile needs --extractor raw or match")
        update_profile(extractor)
        return

    cart, cart_share = train(gym.make("CartPole-v1"), "MlpPolicy", args.steps, args.device)
    pieces = piece_ids(split="test")[:8]
    music, music_share = train(gym.make("lmm/ScoreFollowing-v0", pieces=pieces),
                               "MultiInputPolicy", args.steps, args.device, extractor)
    print(f"{'PPO on':<40}{'steps/s':>10}{'env share':>12}")
    print(f"{'CartPole-v1':<40}{cart:>10.0f}{cart_share:>12.1%}")
    print(f"{'lmm/ScoreFollowing-v0':<40}{music:>10.0f}{music_share:>12.1%}")
    before = None  # the single env with raw's convolutions in the layout they trained in before
    if args.extractor == "raw":
        before, share = train(gym.make("lmm/ScoreFollowing-v0", pieces=pieces), "MultiInputPolicy", args.steps,
                                 args.device, extractor, {"channels_last": False})
        print(f"{'lmm/ScoreFollowing-v0, channels_last=False':<40}{before:>10.0f}{share:>12.1%}")
    print(f"ScoreFollowing ({args.extractor} extractor) trains at {music / cart:.2f}x CartPole's steps/s on {args.device}; "
          f"the env takes {music_share:.1%} of its training time")
    if args.n_envs:
        print(f"\n{'envs':>5}{'batched/s':>11}{'Dummy/s':>10}{'batched/Dummy':>15}{'batched/1 env':>15}"
              + (f"{'batched/1 env before':>22}" if before else ""))
    for n in args.n_envs:
        fast = train_vectorized(n, True, args.steps, args.device, extractor)
        slow = train_vectorized(n, False, args.steps, args.device, extractor)
        print(f"{n:>5}{fast:>11.0f}{slow:>10.0f}{fast / slow:>14.2f}x{fast / music:>14.2f}x"
              + (f"{fast / before:>21.2f}x" if before else ""))


if __name__ == "__main__":
    main()
