"""Memory of the envs: peak RSS of one env cycling through the whole train split, and of 8 AsyncVectorEnv workers.

    python benchmarks/memory.py [--env lmm/ScoreFollowing-v0] [--split train] [--limit 0] [--workers 8]

Figures are reported beyond a baseline measured in the same run: the interpreter with numpy, torch,
stable-baselines3 and lmm_envs imported. Workers are forked, so their RSS counts the pages they share with the
parent; their PSS divides those among the sharers and sums to what they really hold. Prepared pieces are shared
through the on-disk cache; each process keeps at most a small LRU of them in memory.
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym

import lmm_envs  # noqa: F401


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def pss_mb(pid: int | str = "self") -> float:
    """Proportional set size: a process's own pages plus its share of pages it shares (forked workers share the
    parent's imports), so summing it over processes counts shared memory once. NaN where the kernel lacks it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="lmm/ScoreFollowing-v0")
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pieces of the split")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200, help="steps per episode (then the next piece)")
    args = ap.parse_args()
    import stable_baselines3  # noqa: F401
    import torch  # noqa: F401

    baseline = rss_mb()
    env = gym.make(args.env, split=args.split)
    n = len(env.unwrapped.sources) if not args.limit else min(args.limit, len(env.unwrapped.sources))
    from tqdm import tqdm

    for i in tqdm(range(n), desc=f"cycling through {n} pieces"):
        env.reset(seed=i, options={"piece": i})
        for _ in range(args.steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    one = peak_rss_mb()
    print(f"baseline (python + numpy + torch + SB3 + lmm_envs): {baseline:.0f} MB")
    print(f"one env through {n} pieces of {args.split}: peak {one:.0f} MB, {one - baseline:.0f} MB beyond the baseline")
    pieces = env.unwrapped.sources[: min(n, 64)]
    envs = gym.vector.AsyncVectorEnv([lambda: gym.make(args.env, pieces=pieces) for _ in range(args.workers)])
    envs.reset(seed=0)
    for _ in range(300):
        envs.step(envs.action_space.sample())
    workers = [rss_mb(p.pid) for p in envs.processes]
    shares = [pss_mb(p.pid) for p in envs.processes]
    envs.close()
    print(f"{args.workers} AsyncVectorEnv workers: RSS {max(workers):.0f} MB the largest, {sum(workers):.0f} MB summed "
          f"(pages shared with the parent counted in each); PSS {sum(shares):.0f} MB in all, {max(shares):.0f} MB the "
          f"largest (shared pages divided among the processes sharing them); main process RSS {rss_mb():.0f} MB, "
          f"PSS {pss_mb():.0f} MB, pid {os.getpid()}")


if __name__ == "__main__":
    main()
