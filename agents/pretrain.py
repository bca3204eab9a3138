"""Pretrain the LMs and the few-pair mappings, and measure the mappings.

    python -m agents.pretrain --out runs/lm [--size small|tiny] [--lm-steps 1500] [--paired-budget 8 64]
                              [--method regression predictive contrastive] [--pairs-only] [--device auto] [--quiet]

Trains LM^V on the unpaired score pool and LM^A on the unpaired audio pool, then for each paired budget K and
method fits a mapping from exactly K paired pieces and measures its retrieval accuracy on the held-out paired
pieces. Writes ``lm_v.pt``, ``lm_a.pt``, ``mapping_<method>_K<K>.pt`` (plain tensors, loaded with
``weights_only=True``) and ``report.json`` (losses, retrieval against chance).

``--pairs-only`` adds the reference that shows what the unpaired pools add: for each K, the same LMs (size, steps)
trained on the K paired pieces alone (their audio for LM^A, their scores for LM^V), mapped by the methods that
use no unpaired data (``regression``, ``contrastive``) and measured on the same held-out pieces.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agents.lm.audio import train_audio_lm
from agents.lm.mapping import METHODS, fit_mapping, retrieval_accuracy
from agents.lm.model import SIZES, resolve_device
from agents.lm.symbolic import train_symbolic_lm
from lmm_envs.music import corpus

PAIRS_ONLY_METHODS = ("regression", "contrastive")  # the methods that read no unpaired data


def pretrain(out: str | Path, size: str = "small", lm_steps: int = 1500, budgets: tuple[int, ...] = (8, 64),
             methods: tuple[str, ...] = METHODS, device: str = "auto", pool_limit: int | None = None,
             progress: bool = True, pairs_only: bool = False) -> dict:
    """Train and save everything into ``out``; returns the report (also written to ``out/report.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    start = time.perf_counter()
    lm_v, v_losses, v_ids = train_symbolic_lm(size, lm_steps, pool_limit, device, progress=progress)
    lm_a, a_losses, a_ids = train_audio_lm(size, lm_steps, pool_limit, device, progress=progress)
    lm_v.save(out / "lm_v.pt")
    lm_a.save(out / "lm_a.pt")
    report = {
        "device": device, "size": size, "lm_steps": lm_steps,
        "lm_v": {"pieces": len(v_ids), "loss_first": v_losses[0], "loss_last": sum(v_losses[-50:]) / len(v_losses[-50:])},
        "lm_a": {"pieces": len(a_ids), "loss_first": a_losses[0], "loss_last": sum(a_losses[-50:]) / len(a_losses[-50:])},
        "mappings": [],
    }
    for k in budgets:
        for method in methods:
            mapping = fit_mapping(lm_a, lm_v, k, method)
            mapping.save(out / f"mapping_{method}_K{k}.pt")
            report["mappings"].append({"paired_budget": k, "method": method, "lms": "unpaired pools",
                                       **retrieval_accuracy(lm_a, lm_v, mapping)})
        if pairs_only:
            ids = corpus.paired_ids(k)
            ref_v, _, _ = train_symbolic_lm(size, lm_steps, None, device, progress=progress, ids=ids)
            ref_a, _, _ = train_audio_lm(size, lm_steps, None, device, progress=progress, ids=ids)
            for method in (m for m in methods if m in PAIRS_ONLY_METHODS):
                mapping = fit_mapping(ref_a, ref_v, k, method)
                report["mappings"].append({"paired_budget": k, "method": method, "lms": "pairs only",
                                           **retrieval_accuracy(ref_a, ref_v, mapping)})
    report["seconds"] = time.perf_counter() - start
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.pretrain", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lm")
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--lm-steps", type=int, default=1500)
    ap.add_argument("--paired-budget", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--method", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pool-limit", type=int, default=0, help="use only the first N pieces of each unpaired pool")
    ap.add_argument("--pairs-only", action="store_true",
                    help="also the reference: the same LMs trained on the K paired pieces alone")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        report = pretrain(args.out, args.size, args.lm_steps, tuple(args.paired_budget), tuple(args.method),
                          args.device, args.pool_limit or None, progress=not args.quiet, pairs_only=args.pairs_only)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for m in report["mappings"]:
        print(f"K={m['paired_budget']:<4} {m['method']:<11} LMs from {m['lms']:<14} retrieval {m['accuracy']:.3f} "
              f"(chance {m['chance']:.3f}, {m['queries']} queries)")
    print(f"wrote {args.out} in {report['seconds']:.0f} s on {report['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
