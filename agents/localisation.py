"""Where each learned comparison points before any training: a check of a representation worth running before
spending RL steps on it.

    python -m agents.localisation --features match hear lmm --h-model runs/h_s0/h_abs_K8_s0.pt \
        --lm-dir runs/lm_small --mapping contrastive --paired-budget 8 [--split val] [--pieces 6]

The oracle follows ``--pieces`` pieces of lmm/ScoreFollowing-v0 (one episode each). Every fifth step with sound in
the window, each features extractor's comparison map (:meth:`match_map`, as built, before any training: ``match``
through the synth; ``hear`` through h, keys down and with onsets; ``lmm`` through LM^A, the few-pair mapping and
LM^V with ``readout="match"``) is read for the last audio frame, and its best-matching score column is compared
with the agent's place in the window (``SCORE_POSITION``). Reported: the share of steps within 2 and 5 columns (100 and
250 ms) of the place, and the median distance; picking a column at random lands within 5 columns 11 times in 80.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from agents.lm import MAPPING_METHODS
from lmm_envs.errors import LMMError

COLUMN_MS = 50  # one score column: 1/20 s
FEATURES = ("match", "hear", "lmm")


def build_extractors(observation_space, features: list[str], h_model: str | None, lm_dir: str, mapping: str,
                     paired_budget: int) -> dict:
    """Each named comparison, built as a policy would build it (``lmm`` with ``readout="match"``)."""
    from agents.features import HearExtractor, LMMExtractor, MatchExtractor
    from agents.train import DEFAULT_H_MODEL

    out = {}
    for name in features:
        if name == "match":
            out[name] = MatchExtractor(observation_space)
        elif name == "hear":
            out[name] = HearExtractor(observation_space, h_model=h_model or DEFAULT_H_MODEL)
            out["hear, onsets"] = HearExtractor(observation_space, h_model=h_model or DEFAULT_H_MODEL, onsets=True)
        else:
            out[name] = LMMExtractor(observation_space, lm_dir=lm_dir, method=mapping, paired_budget=paired_budget,
                                     readout="match")
    return out


def place_errors(extractors: dict, split: str = "val", pieces: int = 6, every: int = 5,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """Columns between each map's best match for the last audio frame and the agent's place, while the oracle
    follows the first ``pieces`` pieces of ``split``: name -> distances."""
    import gymnasium as gym
    import torch
    from tqdm import tqdm

    from agents.lm.data import SCORE_POSITION
    from lmm_envs.benchmark.registry import make_agent
    from lmm_envs.music.corpus import piece_ids

    chosen = piece_ids(split=split)[:pieces]
    env = gym.make("lmm/ScoreFollowing-v0", pieces=chosen)
    errors: dict[str, list[int]] = {name: [] for name in extractors}
    for episode in tqdm(range(len(chosen)), desc="episodes", disable=not progress):
        obs, info = env.reset(seed=episode)
        oracle = make_agent("oracle", env)
        oracle.reset(obs, info)
        done, step = False, 0
        while not done:
            if step % every == 0 and obs["audio"].max() > 0:
                audio, score = (torch.as_tensor(obs[k][None]).float() / 255.0 for k in ("audio", "score"))
                with torch.no_grad():
                    for name, extractor in extractors.items():
                        best = int(extractor.match_map(audio, score)[0, -1].argmax())
                        errors[name].append(abs(best - SCORE_POSITION))
            obs, _, terminated, truncated, info = env.step(oracle.act(obs, info))
            done, step = terminated or truncated, step + 1
    env.close()
    return {name: np.asarray(e) for name, e in errors.items()}


def summary(errors: dict[str, np.ndarray]) -> list[dict]:
    """One row per comparison: steps, share within 2 and 5 columns, median distance in columns."""
    return [{"features": name, "steps": int(e.size), "within_2": float(np.mean(e <= 2)),
             "within_5": float(np.mean(e <= 5)), "median_columns": float(np.median(e))}
            for name, e in errors.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.localisation", description=__doc__.splitlines()[0])
    ap.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    ap.add_argument("--h-model", help="h: A -> M for hear (python -m agents.hear)")
    ap.add_argument("--lm-dir", default="runs/lm", help="LMs and mappings for lmm (python -m agents.pretrain)")
    ap.add_argument("--mapping", default="regression", choices=MAPPING_METHODS)
    ap.add_argument("--paired-budget", type=int, default=8)
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--pieces", type=int, default=6, help="pieces the oracle follows, one episode each")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    import gymnasium as gym

    import lmm_envs  # noqa: F401

    try:
        if args.pieces < 1:
            raise LMMError(f"--pieces must be at least 1, got {args.pieces}")
        space = gym.make("lmm/ScoreFollowing-v0").observation_space
        extractors = build_extractors(space, args.features, args.h_model, args.lm_dir, args.mapping,
                                      args.paired_budget)
        rows = summary(place_errors(extractors, args.split, args.pieces, progress=not args.quiet))
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'features':<18}{'steps':>7}{'within 100 ms':>15}{'within 250 ms':>15}{'median (ms)':>13}")
    for r in rows:
        print(f"{r['features']:<18}{r['steps']:>7}{r['within_2']:>15.2f}{r['within_5']:>15.2f}"
              f"{r['median_columns'] * COLUMN_MS:>13.0f}")
    print("a column picked at random: within 100 ms 0.06, within 250 ms 0.14")
    return 0


if __name__ == "__main__":
    sys.exit(main())
