"""Retrieval through both bridges at once: the few-pair LM mapping and h: A -> M.

An audio moment can be placed against the score's moments two ways: through the LMs (LM^A's state, mapped onto
LM^V's space with K pairs: :func:`agents.lm.mapping.mapped_similarity`) and through motion (the chords h hears,
against the score's chords, tempo dropped: :func:`agents.lm.mapping.motion_similarity`). They err differently: the
LM states keep a moment's sound and context, h keeps which keys start. Fusing them is one more mapping that uses
the unpaired pools (both LMs, and h's training by synthesis) and the pairs (the map's fit, h's calibration).

Each query's similarities to the piece's moments are standardised per comparison (zero mean, unit spread over
the keys) and mixed, ``(1 - weight) * LM + weight * h``. h's chords drop the tempo, and with it what tells apart
two moments inside the same held chord; ``timing`` adds back how long ago each side's last chord began
(:func:`agents.lm.mapping.timed_similarity`). ``weight`` and ``timing`` are chosen together on the val pieces
(:func:`agents.lm.mapping.validation_ids`), never on the held-out ones they are then scored on; the best weight
with ``timing`` 0 is kept beside them, the fusion without timing.

A third comparison runs h's piano the other way, M -> A: the score window played through h's keyboard against
the heard frames (:func:`agents.lm.mapping.piano_distance`, no pairs, no training). ``piano`` mixes it in,
``(1 - piano) * [(1 - weight) * LM + weight * h] + piano * score through the piano``, chosen on val with the
others; ``piano`` 0 is the two-bridge fusion above, reported beside it.

    python -m agents.lm.fusion --lm-dir leaderboard/lms/base --paired-budget 8 64 208 \\
        --h 'runs/h/h_abs_K{K}_s0.pt' 'runs/h/h_abs_K{K}_s1.pt' --plot retrieval.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())
TIMINGS = (0.0, 0.005, 0.01, 0.02, 0.05)  # per frame of age gap, against chord distances in [0, 1]
PIANOS = WEIGHTS  # the share of the score-through-the-piano comparison in the mix


def standardised(similarity: torch.Tensor) -> torch.Tensor:
    """Each row (a query against every key) shifted to mean 0 and scaled to unit standard deviation; a row whose
    keys all look alike stays a row of zeros (it then leaves the choice to the other comparison)."""
    centred = similarity - similarity.mean(dim=1, keepdim=True)
    spread = centred.std(dim=1, keepdim=True)
    return torch.where(spread > 1e-12, centred / spread.clamp_min(1e-12), torch.zeros_like(centred))


def fused(lm_similarity: torch.Tensor, motion_similarity: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight)`` of the LM mapping's standardised similarities plus ``weight`` of h's."""
    return mix_standardised(standardised(lm_similarity), standardised(motion_similarity), weight)


def mix_standardised(by_lm: torch.Tensor, by_motion: torch.Tensor, weight: float) -> torch.Tensor:
    """:func:`fused` on similarities already standardised (shared with :mod:`agents.lm.transfer`)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    return (1.0 - weight) * by_lm + weight * by_motion


def _mix3(by_lm: torch.Tensor, by_motion: torch.Tensor, by_piano: torch.Tensor, weight: float,
          piano: float) -> torch.Tensor:
    """:func:`mix_standardised` of the LM mapping and h, mixed again with the score through the piano (share ``piano``)."""
    if not 0.0 <= piano <= 1.0:
        raise ValueError(f"piano must lie in [0, 1], got {piano}")
    return (1.0 - piano) * mix_standardised(by_lm, by_motion, weight) + piano * by_piano


@torch.no_grad()
def piano_distances(h, piece_ids: list[str], candidates: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """:func:`agents.lm.mapping.piano_distance` on each piece's retrieval moments (those of
    :func:`fused_retrieval` for the same ``seed``): computed once, shared by every h with the same keyboard."""
    from agents.lm.mapping import piano_distance, retrieval_moments

    rng = np.random.default_rng(seed)
    return [piano_distance(h, *retrieval_moments(pid, rng, candidates)) for pid in piece_ids]


@torch.no_grad()
def fused_retrieval(lm_a, lm_v, mapping, h, weights: tuple[float, ...] = WEIGHTS, timings: tuple[float, ...] = (0.0,),
                    piece_ids: list[str] | None = None, candidates: int = 16, seed: int = 0,
                    pianos: tuple[float, ...] = (0.0,), piano_terms: list[torch.Tensor] | None = None) -> dict:
    """Top-1 retrieval among ``candidates`` moments of each piece (the same pieces and moments as
    :func:`agents.lm.mapping.retrieval_accuracy` for the same ``seed``), for every piano share, timing and mixing
    weight at once: piano 0 and weight 0 is the LM mapping's ``pooled`` retrieval, piano 0 and weight 1 h's
    ``sequence`` retrieval (with that timing), piano 1 the score through the piano alone. ``piano_terms``: the
    :func:`piano_distances` of these pieces, if already computed. Returns ``{"accuracy": {piano: {timing: {weight:
    share}}}, "queries": n, "chance": 1 / candidates}``."""
    from agents.lm.mapping import (
        held_out_ids,
        mapped_similarity,
        motion_terms,
        own_share,
        retrieval_moments,
        timed_similarity,
    )

    piece_ids = piece_ids or held_out_ids()
    if any(p > 0 for p in pianos) and piano_terms is None:
        piano_terms = piano_distances(h, piece_ids, candidates, seed)
    rng = np.random.default_rng(seed)
    hits = {p: {t: dict.fromkeys(weights, 0.0) for t in timings} for p in pianos}
    total = 0
    for i, pid in enumerate(piece_ids):
        piece, times = retrieval_moments(pid, rng, candidates)
        by_lm = standardised(mapped_similarity(lm_a, lm_v, mapping, piece, times))  # once, for every setting
        by_piano = standardised(-piano_terms[i]) if piano_terms is not None else torch.zeros_like(by_lm)
        distance, age_gap = motion_terms(h, piece, times)
        for t in timings:
            by_motion = standardised(timed_similarity(distance, age_gap, t))
            for p in pianos:
                for w in weights:
                    hits[p][t][w] += own_share(_mix3(by_lm, by_motion, by_piano, w, p))
        total += len(times)
    return {"accuracy": {p: {t: {w: hits[p][t][w] / total for w in weights} for t in timings} for p in pianos},
            "queries": total, "chance": 1.0 / candidates}


def best_weight(accuracy: dict[float, float]) -> float:
    """The weight of the highest accuracy; among equals, the one nearest 0.5 (an even mix)."""
    top = max(accuracy.values())
    return min((w for w, a in accuracy.items() if a >= top - 1e-12), key=lambda w: (abs(w - 0.5), w))


def best_setting(accuracy: dict[float, dict[float, float]]) -> tuple[float, float]:
    """``(weight, timing)`` of the highest accuracy in ``{timing: {weight: share}}``; among equals the smallest
    timing, then the weight nearest 0.5."""
    top = max(a for by_weight in accuracy.values() for a in by_weight.values())
    timing = min(t for t, by_weight in accuracy.items() if max(by_weight.values()) >= top - 1e-12)
    return best_weight(accuracy[timing]), timing


def best_mix(accuracy: dict[float, dict[float, dict[float, float]]]) -> tuple[float, float, float]:
    """``(piano, weight, timing)`` of the highest accuracy in ``{piano: {timing: {weight: share}}}``; among equals
    the smallest piano share, then as :func:`best_setting`."""
    top = max(a for by_timing in accuracy.values() for by_weight in by_timing.values() for a in by_weight.values())
    piano = min(p for p, by_timing in accuracy.items()
                if max(a for by_weight in by_timing.values() for a in by_weight.values()) >= top - 1e-12)
    return (piano, *best_setting(accuracy[piano]))


def evaluate_fusion(lm_dir: Path, paired_budgets: list[int], h_templates: list[str], method: str = "contrastive",
                    candidates: int = 16, seed: int = 0, timings: tuple[float, ...] = TIMINGS) -> dict:
    """For each K and each h (``h_templates`` with ``{K}`` filled in): the weight and timing chosen on the val
    pieces (and the weight chosen with timing 0, and the timing h alone does best with), and held-out retrieval by
    the LM mapping alone, by h alone (without and with its timing) and by both (without and with timing); the same
    with the score through the piano: alone, with the LM mapping alone, and with both (share, weight and timing
    chosen on val together); then,
    per K, the mean and 95% t-interval over the h networks (their training seeds; the LMs and each K's mapping are
    fixed). ``timings`` always gains 0."""
    from agents.lm.mapping import Mapping, held_out_ids, mapping_name, validation_ids
    from agents.lm.model import FrameLM
    from agents.lm.transcription import KeyNet
    from lmm_envs.errors import ConfigError

    def h_path(template: str, k: int) -> Path:
        return Path(template.replace("{K}", str(k)))

    if not timings or any(t < 0 for t in timings):
        raise ConfigError(f"--timings takes one or more values >= 0, got {list(timings)}")
    timings = tuple(sorted({0.0, *timings}))
    files = [lm_dir / "lm_a.pt", lm_dir / "lm_v.pt", *(lm_dir / mapping_name(method, k) for k in paired_budgets),
             *(h_path(t, k) for k in paired_budgets for t in h_templates)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"not found: {', '.join(missing)} (LMs and mappings come from python -m agents.pretrain, "
                          "h from python -m agents.hear)")
    lm_a, lm_v = FrameLM.load(files[0]), FrameLM.load(files[1])
    rows = []
    pianos: dict[tuple[str, bytes], list[torch.Tensor]] = {}  # by pieces and keyboard: the same for every h

    def piano_of(h, pieces: str) -> list[torch.Tensor]:
        key = (pieces, h.basis.numpy().tobytes())
        if key not in pianos:
            pianos[key] = piano_distances(h, validation_ids() if pieces == "val" else held_out_ids(), candidates,
                                          seed)
        return pianos[key]

    for k in paired_budgets:
        mapping = Mapping.load(lm_dir / mapping_name(method, k))
        for template in h_templates:
            h = KeyNet.load(h_path(template, k))
            on_val = fused_retrieval(lm_a, lm_v, mapping, h, timings=timings, piece_ids=validation_ids(),
                                     candidates=candidates, seed=seed, pianos=PIANOS,
                                     piano_terms=piano_of(h, "val"))["accuracy"]
            weight, timing = best_setting(on_val[0.0])
            untimed_weight = best_weight(on_val[0.0][0.0])
            _, h_timing = best_setting({t: {1.0: by_weight[1.0]} for t, by_weight in on_val[0.0].items()})  # h alone
            piano, piano_weight, piano_timing = best_mix(on_val)
            lm_piano = min(PIANOS, key=lambda p: (-on_val[p][0.0][0.0], p))  # the LM mapping and the piano, no h
            held_out = fused_retrieval(lm_a, lm_v, mapping, h,
                                       weights=tuple(sorted({0.0, weight, untimed_weight, piano_weight, 1.0})),
                                       timings=tuple(sorted({0.0, timing, h_timing, piano_timing})),
                                       candidates=candidates, seed=seed,
                                       pianos=tuple(sorted({0.0, piano, lm_piano, 1.0})),
                                       piano_terms=piano_of(h, "test"))
            accuracy = held_out["accuracy"]
            rows.append({"paired_budget": k, "h": str(h_path(template, k)), "weight": weight, "timing": timing,
                         "untimed_weight": untimed_weight, "h_timing": h_timing, "piano": piano,
                         "piano_weight": piano_weight, "piano_timing": piano_timing, "lm_piano_share": lm_piano,
                         "val": on_val,
                         "lm_alone": accuracy[0.0][0.0][0.0], "h_alone": accuracy[0.0][0.0][1.0],
                         "h_timed": accuracy[0.0][h_timing][1.0],
                         "fused_untimed": accuracy[0.0][0.0][untimed_weight], "fused": accuracy[0.0][timing][weight],
                         "piano_alone": accuracy[1.0][0.0][0.0], "lm_piano": accuracy[lm_piano][0.0][0.0],
                         "fused_piano": accuracy[piano][piano_timing][piano_weight],
                         "queries": held_out["queries"]})
    return {"lm_dir": str(lm_dir), "method": method, "candidates": candidates, "seed": seed,
            "timings": list(timings), "pianos": list(PIANOS), "rows": rows, "summary": summarise(rows)}


SUMMARISED = ("lm_alone", "h_alone", "h_timed", "fused_untimed", "fused", "piano_alone", "lm_piano", "fused_piano")


def summarise(rows: list[dict]) -> list[dict]:
    """Per K: each comparison's mean over the rows (the h networks) with a 95% t-interval (None from one row)."""
    from agents.experiment import t_interval

    out = []
    for k in sorted({r["paired_budget"] for r in rows}):
        mine = [r for r in rows if r["paired_budget"] == k]
        entry: dict = {"paired_budget": k, "n": len(mine)}
        for key in SUMMARISED:
            values = [r[key] for r in mine]
            low, high = t_interval(values)
            entry[key] = {"mean": float(np.mean(values)), "low": None if low != low else low,
                          "high": None if high != high else high}
        out.append(entry)
    return out


def plot(report: dict, path: Path) -> None:
    """Held-out retrieval against K: the LM mapping, h and both, with their intervals and chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report["summary"]
    ks = [s["paired_budget"] for s in summary]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    lines = (("fused_piano", "LM mapping + h + score through h's piano", "-", "tab:blue"),
             ("lm_piano", "LM mapping + score through h's piano", "--", "tab:cyan"),
             ("piano_alone", "score through h's piano (no pairs)", "-.", "black"),
             ("fused", "LM mapping + h, timed (chosen on val)", "-", "tab:green"),
             ("fused_untimed", "LM mapping + h, chords alone", "--", "tab:red"),
             ("h_timed", "h: A -> M, chords + timing", "-", "tab:purple"),
             ("h_alone", "h: A -> M, chords alone", "--", "tab:brown"),
             ("lm_alone", f"LM mapping ({report['method']})", "-", "tab:pink"))
    for key, label, style, color in lines:
        means = [s[key]["mean"] for s in summary]
        ax.plot(ks, means, marker="o", linestyle=style, color=color, label=label)
        if all(s[key]["low"] is not None for s in summary):
            ax.fill_between(ks, [s[key]["low"] for s in summary], [s[key]["high"] for s in summary], alpha=0.2,
                            color=color)
    finish_retrieval_plot(fig, ax, ks, report["candidates"], path)


def plot_against_k(rows: list[dict], bands: tuple, flats: tuple, candidates: int, path: Path) -> None:
    """A retrieval-against-K figure from a report's ``rows`` (one per K): each of ``bands`` (key, label, colour) a
    line through the rows' shares with its interval shaded; each of ``flats`` (share, label, line style) a black
    horizontal line, a comparison that uses no pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["paired_budget"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key, label, color in bands:
        ax.plot(ks, [r[key]["share"] for r in rows], marker="o", color=color, label=label)
        ax.fill_between(ks, [r[key]["ci"][0] for r in rows], [r[key]["ci"][1] for r in rows], alpha=0.2, color=color)
    for share, label, style in flats:
        ax.axhline(share, color="black", linestyle=style, label=label)
    finish_retrieval_plot(fig, ax, ks, candidates, path, chance_style="--")


def add_retrieval_options(ap: argparse.ArgumentParser, pairs_help: str) -> None:
    """The options of a retrieval-against-K command: --paired-budget, --candidates, --seed, --out, --plot, --quiet."""
    ap.add_argument("--paired-budget", type=int, nargs="+", default=[8, 64, 208], help=pairs_help)
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="which draw of moments (the retrieval task's seed)")
    ap.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    ap.add_argument("--plot", type=Path, help="draw retrieval against K here (PNG)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def check_retrieval_options(args: argparse.Namespace) -> None:
    """One :class:`LMMError` for what :func:`add_retrieval_options` added and cannot run, before any work."""
    from lmm_envs.errors import LMMError
    from lmm_envs.files import check_output_file

    if args.candidates < 2:
        raise LMMError(f"--candidates must be at least 2, got {args.candidates}")
    if any(k < 1 for k in args.paired_budget):
        raise LMMError(f"--paired-budget takes positive numbers of pairs, got {args.paired_budget}")
    check_output_file(args.out)
    if args.plot is not None:
        check_output_file(args.plot, "--plot")


def shown(entry: dict) -> str:
    """A share with its interval, as the commands print it: ``0.878 [0.828, 0.925]``."""
    return f"{entry['share']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]"


def write_report(report: dict, out: Path, figure: Path | None, draw) -> None:
    """``report`` as JSON at ``out`` and, given ``figure``, ``draw(report, path)`` there; each written whole."""
    from lmm_envs.files import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    if figure is not None:
        with atomic_path(figure) as tmp:
            draw(report, tmp)


def finish_retrieval_plot(fig, ax, ks: list[int], candidates: int, path: Path, chance_style: str = ":") -> None:
    """The axes every retrieval-against-K figure shares (chance, K on a log axis, retrieval 0 to 1, the legend),
    then the figure saved to ``path`` and closed."""
    import matplotlib.pyplot as plt

    ax.axhline(1.0 / candidates, color="grey", linestyle=chance_style, label="chance")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K (paired pieces)")
    ax.set_ylabel(f"held-out retrieval among {candidates}")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from lmm_envs.errors import LMMError

    ap = argparse.ArgumentParser(prog="python -m agents.lm.fusion", description=__doc__.splitlines()[0])
    ap.add_argument("--lm-dir", type=Path, required=True, help="LM^A, LM^V and their mappings (agents.pretrain)")
    ap.add_argument("--paired-budget", type=int, nargs="+", required=True, help="K: which of the folder's mappings")
    ap.add_argument("--method", default="contrastive", help="the mappings' method (their file names)")
    ap.add_argument("--h", nargs="+", required=True, metavar="PATH",
                    help="h networks (agents.hear), {K} standing for the paired budget; several (seeds) give intervals")
    ap.add_argument("--timings", type=float, nargs="+", default=list(TIMINGS),
                    help="the weights of the last chords' age gap (per frame) to choose from on val (0 is always "
                         "tried: the fusion of chords alone)")
    ap.add_argument("--seed", type=int, default=0, help="which draw of moments (the retrieval task's seed)")
    ap.add_argument("--out", type=Path, help="write the report as JSON here too")
    ap.add_argument("--plot", type=Path, help="draw retrieval against K here (PNG)")
    args = ap.parse_args(argv)
    try:
        report = evaluate_fusion(args.lm_dir, args.paired_budget, args.h, args.method, seed=args.seed,
                                 timings=tuple(args.timings))
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for row in report["rows"]:
        print(f"K={row['paired_budget']} {row['h']}: weight {row['weight']}, timing {row['timing']} (chosen on val); "
              f"held-out retrieval: LM mapping {row['lm_alone']:.3f}, h {row['h_alone']:.3f} (timed "
              f"{row['h_timed']:.3f} at {row['h_timing']}), both {row['fused_untimed']:.3f} (timed {row['fused']:.3f}); "
              f"score through the piano {row['piano_alone']:.3f}, with the LM mapping {row['lm_piano']:.3f}, all three "
              f"{row['fused_piano']:.3f} (piano {row['piano']}, weight {row['piano_weight']}, timing "
              f"{row['piano_timing']}) ({row['queries']} queries)")
    for s in report["summary"]:
        parts = []
        for key, label in (("fused", "both"), ("fused_piano", "all three")):
            f = s[key]
            interval = f" [{f['low']:.3f}, {f['high']:.3f}]" if f["low"] is not None else ""
            parts.append(f"{label} {f['mean']:.3f}{interval}")
        print(f"K={s['paired_budget']}: {', '.join(parts)} over {s['n']} h")
    from lmm_envs.files import atomic_path

    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    if args.plot:
        with atomic_path(args.plot) as tmp:
            plot(report, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
