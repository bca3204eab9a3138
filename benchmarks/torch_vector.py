"""The torch batched ScoreFollowing env on a device next to the numpy vector env, measured in the same run.

    python benchmarks/torch_vector.py [--device auto] [--num-envs 64 1024 4096] [--steps 300]

First a check: on ``--device``, the torch env gives the numpy env's observations, rewards, ends and episode metrics
bit for bit over 300 steps of 16 envs (if not, it says so and exits non-zero after timing). Then, for each N, aggregate steps per second of
the numpy native env (``vectorization_mode="vector_entry_point"``, on the CPU) and of the torch one
(``device=...``, random actions drawn on the device, observations left there), and their ratio; at the first N also
``SyncVectorEnv`` over single envs. Each N runs twice: with random actions (an episode is lost and reset about
every 170 steps) and with ``terminate_on_lost=False`` (episodes run to the piece's end). Prints figures and ratios.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from env_throughput import benchmark_pieces, vector_steps_per_second

import lmm_envs  # noqa: F401

ENV_ID = "lmm/ScoreFollowing-v0"


def same_as_numpy(device: str, pieces: list[str], num_envs: int = 16, steps: int = 300) -> tuple[bool, int]:
    """Whether the torch env on ``device`` returns what the numpy env returns, bit for bit; and how many steps
    saw episodes end (and so compared metrics)."""
    ref = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", pieces=pieces)
    dev = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", pieces=pieces,
                       device=device)
    a, _ = ref.reset(seed=5)
    b, _ = dev.reset(seed=5)
    same = all(a[k].tobytes() == b[k].cpu().numpy().tobytes() for k in a)
    ref.action_space.seed(1)
    ends = 0
    for _ in range(steps):
        action = ref.action_space.sample()
        a, ra, ta, tra, ia = ref.step(action)
        b, rb, tb, trb, ib = dev.step(torch.as_tensor(action, device=device))
        same &= all(a[k].tobytes() == b[k].cpu().numpy().tobytes() for k in a)
        same &= ra.tobytes() == rb.cpu().numpy().tobytes()
        same &= np.array_equal(ta, tb.cpu().numpy()) and np.array_equal(tra, trb.cpu().numpy())
        if ia:
            ends += 1
            same &= np.array_equal(ia["episode_metrics_index"], ib.get("episode_metrics_index"))
            same &= all(v.tobytes() == ib["episode_metrics"][k].tobytes() for k, v in ia["episode_metrics"].items())
    ref.close()
    dev.close()
    return bool(same), ends


def torch_steps_per_second(device: str, num_envs: int, steps: int, **kwargs) -> float:
    """Aggregate steps/s of the torch env on ``device``, with random actions drawn there beforehand."""
    envs = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device, **kwargs)
    envs.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, 3, (steps, num_envs), generator=generator, device=device)
    for action in actions[: max(steps // 4, 20)]:  # warm-up: every piece's derived arrays built, kernels loaded
        envs.step(action)
    synchronize(device)
    start = time.perf_counter()
    for action in actions:
        envs.step(action)
    synchronize(device)
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * num_envs / elapsed


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="torch device for the torch env (auto: CUDA if available)")
    ap.add_argument("--num-envs", type=int, nargs="+", default=[64, 1024, 4096])
    ap.add_argument("--steps", type=int, default=300, help="vector steps timed per figure")
    args = ap.parse_args()
    from lmm_envs.envs.vector.score_following_torch import torch_device

    device = str(torch_device(args.device))
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    pieces = benchmark_pieces()
    same, ends = same_as_numpy(device, pieces)
    print(f"torch env on {device} ({name}) against the numpy env, 16 envs x 300 steps, {ends} steps with episode "
          f"ends: {'bit-identical' if same else 'DIFFERENT'}")
    print(f"\n{'envs':>6}  {'episodes':<10}{'numpy/s':>12}{'torch/s':>12}{'torch/numpy':>13}{'sync/s':>10}{'torch/sync':>12}")
    for k, n in enumerate(args.num_envs):
        for label, kwargs in (("lost ends", {}), ("run out", {"terminate_on_lost": False})):
            numpy_rate = vector_steps_per_second(ENV_ID, "vector_entry_point", n, args.steps, pieces=pieces, **kwargs)
            torch_rate = torch_steps_per_second(device, n, args.steps, pieces=pieces, **kwargs)
            row = f"{n:>6}  {label:<10}{numpy_rate:>12.0f}{torch_rate:>12.0f}{torch_rate / numpy_rate:>13.2f}"
            if k == 0:
                sync = vector_steps_per_second(ENV_ID, "sync", n, args.steps, pieces=pieces, **kwargs)
                row += f"{sync:>10.0f}{torch_rate / sync:>12.2f}"
            print(row, flush=True)
    if not same:
        raise SystemExit("the torch env's results differ from the numpy env's")


if __name__ == "__main__":
    main()
