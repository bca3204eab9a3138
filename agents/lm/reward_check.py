"""Does a closed-loop reward prefer playing the score? A check worth running before spending RL steps on it.

    python -m agents.lm.reward_check --reward lm-score --lm-dir leaderboard/lms/base --mapping contrastive \\
        --paired-budget 8 [--split val] [--pieces 6] [--out check.json]

Scripted players play the first ``--pieces`` monophonic pieces of ``--split`` on lmm/SightReading-v0 (one episode
each, rendering 0) while the reward judges what they play, as it would judge an agent in training:

- ``oracle``: the score's keys at every frame (what the reward should pay most);
- ``late``: the same keys 5 frames (250 ms) late;
- ``transposed``: the same rhythm three keys up: music, not this music;
- ``random``: a key drawn at random every frame; ``silent``: no key.

Reported per player: the mean reward per step with a 95% bootstrap interval over steps. A reward that knows the
score ranks ``oracle`` first and ``transposed`` well below it; LM^A's likelihood (``--reward lm``) need not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from agents.lm import MAPPING_METHODS
from lmm_envs.errors import ConfigError, LMMError

PLAYERS = ("oracle", "late", "transposed", "random", "silent")
CHECKED_REWARDS = ("lm-score", "lm-margin", "lm-contrast", "score", "lm")
LATE_FRAMES = 5
TRANSPOSE_KEYS = 3


def judged_env(reward: str, pieces: list, lm_dir: str, mapping: str, paired_budget: int, h_model: str | None):
    """lmm/SightReading-v0 (mono) over ``pieces`` with the reward's wrapper, built as :mod:`agents.train` builds it."""
    import gymnasium as gym

    from agents.lm.reward import closed_loop_env, closed_loop_judge
    from agents.train import DEFAULT_H_MODEL

    if reward not in CHECKED_REWARDS:
        raise ConfigError(f"--reward must be one of {', '.join(CHECKED_REWARDS)}, got {reward!r}")
    judge = closed_loop_judge(reward, lm_dir, h_model or DEFAULT_H_MODEL, mapping, paired_budget)
    return closed_loop_env(gym.make("lmm/SightReading-v0", pieces=pieces), reward, judge)


def player_action(player: str, env, history: list[int], rng: np.random.Generator) -> int:
    """The scripted player's key at this frame (a mono SightReading action: 0 silence, k the k-th key)."""
    oracle = int(env.unwrapped.oracle_action())
    history.append(oracle)
    if player == "oracle":
        return oracle
    if player == "late":
        return history[-1 - LATE_FRAMES] if len(history) > LATE_FRAMES else 0
    if player == "transposed":
        return min(oracle + TRANSPOSE_KEYS, env.action_space.n - 1) if oracle > 0 else 0
    if player == "random":
        return int(rng.integers(env.action_space.n))
    if player == "silent":
        return 0
    raise ValueError(f"unknown player {player!r}")


def check_reward(env, pieces: int, players: tuple[str, ...] = PLAYERS, seed: int = 0,
                 progress: bool = False) -> dict[str, dict[str, float]]:
    """Each player's mean reward per step over one episode of each of the env's first ``pieces`` pieces, with a
    95% bootstrap interval over steps: ``{player: {"mean", "low", "high", "steps"}}``."""
    from tqdm import tqdm

    from lmm_envs.benchmark.protocol import bootstrap_interval

    out = {}
    for player in players:
        rng = np.random.default_rng(seed)
        rewards: list[float] = []
        for i in tqdm(range(pieces), desc=player, disable=not progress, unit="piece"):
            env.reset(seed=seed, options={"piece": i, "variant": 0})
            history: list[int] = []
            done = False
            while not done:
                _, reward, terminated, truncated, _ = env.step(player_action(player, env, history, rng))
                rewards.append(float(reward))
                done = terminated or truncated
        out[player] = {**bootstrap_interval(rewards), "steps": len(rewards)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.lm.reward_check", description=__doc__.splitlines()[0])
    ap.add_argument("--reward", default="lm-score", choices=CHECKED_REWARDS)
    ap.add_argument("--lm-dir", default="leaderboard/lms/base", help="LMs and mappings (python -m agents.pretrain)")
    ap.add_argument("--mapping", default="contrastive", choices=MAPPING_METHODS)
    ap.add_argument("--paired-budget", type=int, default=8)
    ap.add_argument("--h-model", help="h: A -> M for --reward score (python -m agents.hear)")
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--pieces", type=int, default=6, help="monophonic pieces of the split, one episode each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the report as JSON here")
    args = ap.parse_args(argv)
    try:
        if args.pieces < 1:
            raise ConfigError(f"--pieces must be at least 1, got {args.pieces}")
        from lmm_envs.music.corpus import piece_ids, piece_info

        mono = [p for p in piece_ids(split=args.split) if piece_info(p).monophonic][:args.pieces]
        env = judged_env(args.reward, mono, args.lm_dir, args.mapping, args.paired_budget, args.h_model)
        report = check_reward(env, len(mono), seed=args.seed, progress=True)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.reward} reward per step, {len(mono)} mono {args.split} pieces (95% bootstrap over steps):")
    for player, row in report.items():
        print(f"  {player:<11} {row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]  ({row['steps']} steps)")
    if args.out:
        from lmm_envs.files import atomic_path

        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(json.dumps({"reward": args.reward, "lm_dir": args.lm_dir, "mapping": args.mapping,
                                             "paired_budget": args.paired_budget, "split": args.split,
                                             "pieces": mono, "players": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
