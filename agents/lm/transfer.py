"""The bridges on another instrument: the LM mapping and the piano, heard through a synth they were not built on.

LM^A learned its frames from the harmonic synth's renderings, each K-pair mapping was fitted on them, and h's
keyboard holds that synth's keys. Retrieval (an audio moment placed among 16 score moments of a held-out piece)
is measured on the pieces rendered by each synth in ``--synth``, with the LMs, the mappings and the keyboard kept
as they are: the LM mapping alone, the score through h's piano alone (:func:`agents.lm.mapping.piano_distance`),
and the two mixed (:mod:`agents.lm.fusion`'s standardised mix, the piano's share chosen on the val pieces rendered
by the same synth). Nothing is refitted: how much of each bridge is the instrument it was built on.

    python -m agents.lm.transfer --lm-dir leaderboard/lms/base --paired-budget 8 64 208 \\
        --synth harmonic fluidsynth --out transfer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def mix_hits(lm_a, lm_v, mapping, keyboard: np.ndarray, pieces: list[tuple[dict, np.ndarray]],
             piano_terms: list[torch.Tensor] | None = None) -> dict[float, np.ndarray]:
    """Per piano share of :data:`agents.lm.fusion.PIANOS`, each piece's retrieval hits by ``(1 - share)`` of the LM
    mapping and ``share`` of the score through ``keyboard`` (both standardised); ``piano_terms``: the pieces'
    piano distances, if already computed."""
    from agents.lm.fusion import PIANOS, mix_standardised, standardised
    from agents.lm.mapping import mapped_similarity, own_share, piano_distance

    hits = {share: np.zeros(len(pieces)) for share in PIANOS}
    for i, (piece, times) in enumerate(pieces):
        by_lm = standardised(mapped_similarity(lm_a, lm_v, mapping, piece, times))
        distance = piano_terms[i] if piano_terms is not None else piano_distance(keyboard, piece, times)
        by_piano = standardised(-distance)
        for share in PIANOS:
            hits[share][i] = own_share(mix_standardised(by_lm, by_piano, share))
    return hits


def evaluate(lm_dir: Path, paired_budgets: list[int], synths: list[str], method: str = "contrastive",
             candidates: int = 16, seed: int = 0) -> dict:
    """Per synth and K: held-out retrieval by the LM mapping alone, the piano alone and the two mixed (the share
    chosen on val), each with a 95% bootstrap interval over the held-out pieces."""
    from agents.lm.fusion import PIANOS
    from agents.lm.keyboard_fit import harmonic_keyboard, moments, share_with_interval
    from agents.lm.mapping import Mapping, held_out_ids, mapping_name, piano_distance, validation_ids
    from agents.lm.model import FrameLM
    from lmm_envs.errors import ConfigError

    files = [lm_dir / "lm_a.pt", lm_dir / "lm_v.pt", *(lm_dir / mapping_name(method, k) for k in paired_budgets)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"not found: {', '.join(missing)} (LMs and mappings come from python -m agents.pretrain)")
    lm_a, lm_v = FrameLM.load(files[0]), FrameLM.load(files[1])
    keyboard = harmonic_keyboard()
    report = {"lm_dir": str(lm_dir), "method": method, "candidates": candidates, "seed": seed, "rows": []}
    for synth in synths:
        val, held_out = moments(validation_ids(), synth, candidates, seed), moments(held_out_ids(), synth, candidates,
                                                                                 seed)
        val_piano = [piano_distance(keyboard, piece, times) for piece, times in val]
        held_out_piano = [piano_distance(keyboard, piece, times) for piece, times in held_out]
        queries = sum(len(times) for _, times in held_out)
        for k in paired_budgets:
            mapping = Mapping.load(lm_dir / mapping_name(method, k))
            on_val = {share: float(h.sum()) for share, h in mix_hits(lm_a, lm_v, mapping, keyboard, val,
                                                                      val_piano).items()}
            share = min(PIANOS, key=lambda p: (-on_val[p], p))  # ties towards less piano, as agents.lm.fusion
            hits = mix_hits(lm_a, lm_v, mapping, keyboard, held_out, held_out_piano)
            report["rows"].append({"synth": synth, "paired_budget": k, "piano_share": share, "queries": queries,
                                   "lm_alone": share_with_interval(hits[0.0], queries, seed),
                                   "piano_alone": share_with_interval(hits[1.0], queries, seed),
                                   "lm_piano": share_with_interval(hits[share], queries, seed)})
    return report


def main(argv: list[str] | None = None) -> int:
    from agents.lm.keyboard_fit import check_synths
    from lmm_envs.errors import LMMError
    from lmm_envs.files import atomic_path

    ap = argparse.ArgumentParser(prog="python -m agents.lm.transfer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm-dir", type=Path, default=Path("leaderboard/lms/base"))
    ap.add_argument("--paired-budget", type=int, nargs="+", default=[8, 64, 208])
    ap.add_argument("--mapping", default="contrastive")
    ap.add_argument("--synth", nargs="+", default=["harmonic", "fluidsynth"])
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    args = ap.parse_args(argv)
    try:
        check_synths(args.synth, args.candidates)
        if not args.out.parent.is_dir():
            raise LMMError(f"the folder of {args.out} does not exist; create it first")
        report = evaluate(args.lm_dir, args.paired_budget, args.synth, args.mapping, args.candidates, args.seed)
    except LMMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    for row in report["rows"]:
        print(f"{row['synth']:>10} K={row['paired_budget']:<4} "
              + ", ".join(f"{name} {row[name]['share']:.3f} [{row[name]['ci'][0]:.3f}, {row[name]['ci'][1]:.3f}]"
                          for name in ("lm_alone", "piano_alone", "lm_piano"))
              + f" (piano share {row['piano_share']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
