"""Learn h: A -> M by analysis-by-synthesis, calibrate it on K pairs, and evaluate it as a PlayByEar agent.

    python -m agents.hear --out runs/h [--paired-budget 8 64 all] [--seeds 0 1 2] [--polyphony poly mono]
                          [--synthesis-steps 3000] [--calibration-steps 2000] [--pairs-only-steps 5000]
                          [--pool-limit N] [--limit N] [--quiet]
    python -m agents.hear --merge runs/h_s0 runs/h_s1 --out runs/h      # runs of separate seeds, one table

For each seed: h is trained on the unpaired audio pool alone (rendered through the keyboard, see
:mod:`agents.lm.transcription`); for each paired budget K it is then calibrated on exactly K paired pieces, and the
pairs-only reference (the same network trained on those K pairs alone) is trained beside it. Every network, the
uncalibrated one included (K = 0), plays lmm/PlayByEar-v0 under the evaluation protocol (test split), next to the
template ``transcriber``. Writes the networks (``h_<kind>_K<K>_s<seed>.pt``), the result files
(``results/<polyphony>/...json``), ``report.json`` (every row, with the mean and 95% interval over seeds) and
``h_note_f1.png`` (note F1 against K). Each network is also measured on the LM mappings' retrieval task through
motion (:func:`agents.lm.mapping.motion_retrieval_accuracy`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lmm_envs.errors import LMMError

ENV_ID = "lmm/PlayByEar-v0"
LABELS = {"synthesis": "h by synthesis, no pairs", "abs": "h by synthesis + K pairs", "pairs": "K pairs alone",
          "transcriber": "template transcriber (NNLS)"}


def parse_budgets(values: list[str]) -> list[int]:
    """Paired budgets from the command line: integers, or ``all`` (every paired piece but the held-out ones)."""
    from agents.lm.mapping import HELD_OUT
    from lmm_envs.music import corpus

    most = len(corpus.paired_ids()) - HELD_OUT
    out = []
    for v in values:
        if v == "all":
            out.append(most)
            continue
        try:
            k = int(v)
        except ValueError:
            raise LMMError(f"--paired-budget takes integers or 'all', got {v!r}") from None
        if not 1 <= k <= most:
            raise LMMError(f"--paired-budget {k} is out of range: use 1..{most} or 'all'")
        out.append(k)
    return out


def interval(values: list[float]) -> dict[str, float]:
    """Mean and 95% t-interval over seeds (:func:`agents.experiment.t_interval`; the mean itself for one seed)."""
    from agents.experiment import t_interval

    mean = float(np.mean(values))
    low, high = t_interval(values) if len(values) > 1 else (mean, mean)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def run(out: Path, budgets: list[int], seeds: list[int], polyphonies: list[str], synthesis_steps: int,
        calibration_steps: int, pairs_only_steps: int, pool_limit: int | None, limit: int | None,
        progress: bool) -> dict:
    from agents.baselines.transcriber import LearnedTranscriberAgent
    from agents.lm.mapping import pool_ids, retrieval_ceiling
    from agents.lm.transcription import (
        FrameSet,
        KeyNetConfig,
        calibrate,
        playing_frames,
        train_by_synthesis,
        train_pairs_only,
    )
    from lmm_envs.benchmark.evaluate import evaluate, write_result
    from lmm_envs.music import corpus

    out.mkdir(parents=True, exist_ok=True)
    config = KeyNetConfig()
    start = time.perf_counter()
    pool = [playing_frames(pid)[0] for pid in pool_ids("unpaired_audio", pool_limit)]
    unpaired = FrameSet.build(pool, config.context)
    report: dict = {"budgets": budgets, "seeds": seeds, "unpaired_pieces": len(pool), "unpaired_frames": len(unpaired),
                    "steps": {"synthesis": synthesis_steps, "calibration": calibration_steps,
                              "pairs_only": pairs_only_steps}, "rows": []}

    def measure(kind: str, k: int, seed: int | None, agent_of, train_seconds: float) -> None:
        for polyphony in polyphonies:
            tag = f"{kind}_K{k}" + ("" if seed is None else f"_s{seed}")
            result = evaluate(ENV_ID, agent_of(polyphony), agent_name=f"h_{tag}" if kind != "transcriber" else "transcriber",
                              limit=limit, env_kwargs={"polyphony": polyphony}, progress=progress)
            write_result(result, out / "results" / polyphony / f"{tag}.json")
            agg = result["aggregate"]
            report["rows"].append({"kind": kind, "paired_budget": k, "seed": seed, "polyphony": polyphony,
                                   "note_f1": agg["note_f1"]["mean"], "frame_f1": agg["frame_f1"]["mean"],
                                   "episodes": len(result["episodes"]), "train_seconds": round(train_seconds, 1)})
            if progress:
                print(f"{kind:<11} K={k:<4} seed={seed} {polyphony}: note F1 {agg['note_f1']['mean']:.3f}", flush=True)

    measure("transcriber", 0, None, lambda poly: "transcriber", 0.0)
    for seed in seeds:
        t0 = time.perf_counter()
        base, _ = train_by_synthesis(unpaired, config, synthesis_steps, seed=seed, progress=progress)
        base_seconds = time.perf_counter() - t0
        base.save(out / f"h_synthesis_K0_s{seed}.pt", {"kind": "synthesis", "paired_budget": 0, "seed": seed})
        measure("synthesis", 0, seed, lambda poly, m=base: _agent_factory(LearnedTranscriberAgent, m, poly), base_seconds)
        for k in budgets:
            recordings, keys = zip(*(playing_frames(pid) for pid in corpus.paired_ids(k)), strict=True)
            pairs = FrameSet.build(list(recordings), config.context, list(keys))
            t0 = time.perf_counter()
            tuned, _ = calibrate(base, pairs, unpaired, calibration_steps, seed=seed, progress=progress)
            tuned.save(out / f"h_abs_K{k}_s{seed}.pt", {"kind": "abs", "paired_budget": k, "seed": seed})
            measure("abs", k, seed, lambda poly, m=tuned: _agent_factory(LearnedTranscriberAgent, m, poly),
                    base_seconds + time.perf_counter() - t0)
            t0 = time.perf_counter()
            alone, _ = train_pairs_only(pairs, config, pairs_only_steps, seed=seed, progress=progress)
            alone.save(out / f"h_pairs_K{k}_s{seed}.pt", {"kind": "pairs", "paired_budget": k, "seed": seed})
            measure("pairs", k, seed, lambda poly, m=alone: _agent_factory(LearnedTranscriberAgent, m, poly),
                    time.perf_counter() - t0)
            _write(out, report)
    add_retrieval(report["rows"], out)
    report["summary"] = summarise(report["rows"])
    report["retrieval_ceiling"] = retrieval_ceiling()
    report["seconds"] = round(time.perf_counter() - start, 1)
    _write(out, report)
    plot(report, out / "h_note_f1.png")
    return report


def _agent_factory(cls, model, polyphony: str):
    """The agent for the evaluation's envs: built on an env of the same settings (its keys and action form, which
    are the same for every piece)."""
    import gymnasium as gym

    return cls(gym.make(ENV_ID, polyphony=polyphony, split="test"), model=model)


def _write(out: Path, report: dict) -> None:
    from lmm_envs.files import atomic_path

    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and 95% interval over seeds of each (kind, K, polyphony)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["kind"], r["paired_budget"], r["polyphony"]), []).append(r)
    out = []
    for (kind, k, poly), group in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        row = {"kind": kind, "paired_budget": k, "polyphony": poly, "note_f1": interval([r["note_f1"] for r in group])}
        for metric in ("retrieval", "retrieval_sequence"):
            if all(metric in r for r in group):
                row[metric] = interval([r[metric] for r in group])
        out.append(row)
    return out


def plot(report: dict, path: Path) -> None:
    """Note F1 against K per polyphony, and score-moment retrieval through h against K: one line per kind of h
    (mean and 95% interval over seeds); the uncalibrated h and the template transcriber as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    polys = sorted({s["polyphony"] for s in report["summary"]})
    # retrieval does not depend on the polyphony the networks were evaluated in: draw the fullest set of rows
    fullest = max(polys, key=lambda poly: sum(s["polyphony"] == poly and "retrieval" in s for s in report["summary"]))
    panels = [(poly, "note_f1") for poly in polys] + [(fullest, "retrieval"), (fullest, "retrieval_sequence")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    ceiling = report.get("retrieval_ceiling", {})
    ceilings = {"retrieval": ("notes_played", "a perfect h, bags"),
                "retrieval_sequence": ("notes_played_sequence", "a perfect h, sequences")}
    for ax, (poly, metric) in zip(axes[0], panels, strict=True):
        rows = [s for s in report["summary"] if s["polyphony"] == poly and metric in s]
        for kind in ("abs", "pairs"):
            pts = sorted((s["paired_budget"], s[metric]) for s in rows if s["kind"] == kind)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts],
                            yerr=[[p[1]["mean"] - p[1]["low"] for p in pts], [p[1]["high"] - p[1]["mean"] for p in pts]],
                            marker="o", capsize=3, label=LABELS[kind])
        for kind, style, colour in (("synthesis", ":", "C2"), ("transcriber", "--", "grey")):
            for s in rows:
                if s["kind"] == kind:
                    ax.axhline(s[metric]["mean"], linestyle=style, color=colour, label=LABELS[kind])
        if metric != "note_f1":
            ax.axhline(1 / 16, linestyle="-.", color="black", lw=0.8, label="chance (1/16)")
            name, label = ceilings[metric]
            for key, text, colour in ((name, label, "C3"), ("score_itself", "the score moment itself", "C4")):
                if key in ceiling:
                    ax.axhline(ceiling[key], linestyle="--", color=colour, lw=0.8, label=text)
        ax.set_xscale("log")
        ax.set_xlabel("paired pieces K")
        ax.set_ylabel("note F1 (test split)" if metric == "note_f1" else "top-1 retrieval among 16 moments")
        titles = {"note_f1": f"lmm/PlayByEar-v0, {poly}", "retrieval": "score moment from audio: bags of keys",
                  "retrieval_sequence": "score moment from audio: chord sequences"}
        ax.set_title(titles[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_retrieval(rows: list[dict], run_dir: Path) -> None:
    """Each network's score-moment retrieval through motion, both comparisons
    (:func:`agents.lm.mapping.motion_retrieval_accuracy`, the same held-out pieces and moments as the LM mappings'
    table), for rows that lack it or measured it on another version of the task."""
    from agents.lm.mapping import RETRIEVAL_VERSION, motion_retrieval_accuracy
    from agents.lm.transcription import KeyNet

    measured: dict[Path, tuple[float, float]] = {}
    for r in rows:
        if r["kind"] == "transcriber" or r.get("retrieval_version") == RETRIEVAL_VERSION:
            continue
        path = run_dir / f"h_{r['kind']}_K{r['paired_budget']}_s{r['seed']}.pt"
        if path not in measured:
            h = KeyNet.load(path)
            measured[path] = (motion_retrieval_accuracy(h)["accuracy"],
                              motion_retrieval_accuracy(h, compare="sequence")["accuracy"])
        r["retrieval"], r["retrieval_sequence"] = measured[path]
        r["retrieval_version"] = RETRIEVAL_VERSION


def merge(runs: list[Path], out: Path) -> dict:
    """One report (rows, summary over seeds, plot) from runs of separate seeds (run in parallel processes)."""
    from agents.lm.mapping import retrieval_ceiling

    report: dict = {"merged_from": [str(r) for r in runs], "rows": [], "seconds": 0.0}
    seen = set()
    for run_dir in runs:
        path = run_dir / "report.json"
        if not path.is_file():
            raise LMMError(f"no report.json in {run_dir}; give the --out folders of finished runs")
        part = json.loads(path.read_text())
        add_retrieval(part["rows"], run_dir)
        for r in part["rows"]:
            key = (r["kind"], r["paired_budget"], r["seed"], r["polyphony"])
            if key not in seen:  # the transcriber (no seed) is measured by every run, identically
                seen.add(key)
                report["rows"].append(r)
        report["seconds"] += part.get("seconds", 0.0)
        for field in ("budgets", "unpaired_pieces", "unpaired_frames", "steps"):
            report.setdefault(field, part.get(field))
    report["summary"] = summarise(report["rows"])
    report["retrieval_ceiling"] = retrieval_ceiling()
    out.mkdir(parents=True, exist_ok=True)
    _write(out, report)
    plot(report, out / "h_note_f1.png")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.hear", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/h")
    ap.add_argument("--paired-budget", nargs="+", default=["8", "64", "all"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--polyphony", nargs="+", default=["poly", "mono"], choices=["poly", "mono"])
    ap.add_argument("--synthesis-steps", type=int, default=3000)
    ap.add_argument("--calibration-steps", type=int, default=2000)
    ap.add_argument("--pairs-only-steps", type=int, default=5000)
    ap.add_argument("--pool-limit", type=int, default=0, help="only the first N pieces of the unpaired audio pool")
    ap.add_argument("--limit", type=int, default=0, help="evaluate on N test pieces spread over the split only (a quick look)")
    ap.add_argument("--merge", nargs="+", type=Path, metavar="RUN",
                    help="only merge the reports of finished runs (e.g. one per seed) into --out")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.merge:
            report = merge(args.merge, Path(args.out))
            _print(report)
            return 0
        budgets = parse_budgets(args.paired_budget)
        for name in ("synthesis_steps", "calibration_steps", "pairs_only_steps"):
            if getattr(args, name) < 1:
                raise LMMError(f"--{name.replace('_', '-')} must be at least 1")
        report = run(Path(args.out), budgets, args.seeds, args.polyphony, args.synthesis_steps,
                     args.calibration_steps, args.pairs_only_steps, args.pool_limit or None, args.limit or None,
                     not args.quiet)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print(report)
    print(f"wrote {args.out} in {report['seconds']:.0f} s")
    return 0


def _print(report: dict) -> None:
    for s in report["summary"]:
        f = s["note_f1"]
        retrieval = "".join(f", retrieval ({name}) {r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
                            for name, r in (("bags", s.get("retrieval")), ("sequences", s.get("retrieval_sequence")))
                            if r)
        print(f"{s['polyphony']:<5} {LABELS[s['kind']]:<28} K={s['paired_budget']:<4} note F1 {f['mean']:.3f} "
              f"[{f['low']:.3f}, {f['high']:.3f}]{retrieval} over {f['n']} seed(s)")
    if "retrieval_ceiling" in report:
        c = report["retrieval_ceiling"]
        timed = f" (timed {c['notes_played_sequence_timed']:.3f})" if "notes_played_sequence_timed" in c else ""
        window = f"; the score window up to the place itself {c['score_window_itself']:.3f}" \
            if "score_window_itself" in c else ""
        print(f"retrieval with a perfect h: bags {c['notes_played']:.3f}, sequences {c['notes_played_sequence']:.3f}"
              f"{timed}; the score moment itself (bags) {c['score_itself']:.3f}{window}")


if __name__ == "__main__":
    sys.exit(main())
