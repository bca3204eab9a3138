"""Soak test: run an env for many steps over many episodes and watch its memory.

    python benchmarks/soak.py [--env lmm/ScoreFollowing-v0] [--steps 1000000] [--split test]

Prints the resident set size (RSS) at intervals, the peak RSS of each quarter of the run and the slope of RSS
against episodes after the first quarter (once the in-memory piece caches have filled): memory must not grow with
episodes. Actions are random;
episodes draw pieces and renderings from the whole split.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import lmm_envs  # noqa: F401


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="lmm/ScoreFollowing-v0")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--split", default="test")
    ap.add_argument("--samples", type=int, default=20, help="RSS readings over the run")
    ap.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    kwargs = {k: json.loads(v) if v[:1].isdigit() or v in ("true", "false") else v
              for k, v in (item.split("=", 1) for item in args.env_arg)}
    env = gym.make(args.env, split=args.split, **kwargs)
    env.action_space.seed(0)
    env.reset(seed=0)
    every = max(args.steps // args.samples, 1)
    episodes, readings = 0, []
    start = time.perf_counter()
    print(f"{'steps':>10}{'episodes':>10}{'RSS MB':>10}{'steps/s':>10}")
    for step in range(1, args.steps + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            episodes += 1
            env.reset()
        if step % every == 0:
            readings.append((step, episodes, rss_mb()))
            print(f"{step:>10}{episodes:>10}{readings[-1][2]:>10.1f}{step / (time.perf_counter() - start):>10.0f}")
    later = readings[len(readings) // 4:]  # after the in-memory piece caches have filled
    ep = np.array([r[1] for r in later], dtype=float)
    mb = np.array([r[2] for r in later])
    slope = float(np.polyfit(ep, mb, 1)[0]) * 1000 if np.ptp(ep) > 0 else float("nan")
    quarters = [max(r[2] for r in q) for q in np.array_split(np.array(readings), 4) if len(q)]
    print(f"{args.env}: {episodes} episodes, RSS {readings[0][2]:.1f} -> {readings[-1][2]:.1f} MB; peak RSS per "
          f"quarter of the run {', '.join(f'{q:.0f}' for q in quarters)} MB; slope after the first quarter "
          f"{slope:+.2f} MB per 1000 episodes")


if __name__ == "__main__":
    main()
