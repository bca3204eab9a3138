"""Pretrain the LMs and the few-pair mappings, and measure the LMs and the mappings.

    python -m agents.pretrain --out runs/lm [--size tiny|small|base|large] [--lm-steps 1500] [--paired-budget 8 64]
                              [--method regression predictive contrastive contrastive_mlp] [--pairs-only] [--device auto]
                              [--seeds 0 1 2] [--audio-pool 5] [--score-pool 5] [--audio-layer L] [--score-layer L]
                              [--stop-after-steps N] [--lms-from DIR] [--quiet]
    python -m agents.pretrain --out runs/lm --plot-only [--h-report runs/h/report.json]
    python -m agents.pretrain --merge runs/lm_k8 runs/lm_k64 --out runs/lm_all   # calls of the same LMs, one table

Trains LM^V on the unpaired score pool and LM^A on the unpaired audio pool (each pool's last pieces held out),
then for each paired budget K and method fits a mapping from exactly K paired pieces and measures its retrieval
accuracy on the held-out paired pieces. Writes ``retrieval.png`` (retrieval against K), ``lm_v.pt``, ``lm_a.pt``, ``mapping_<method>_K<K>.pt`` (plain
tensors, loaded with ``weights_only=True``) and ``report.json``: per LM its training loss, its next-frame loss on
the held-out pieces of its pool and its steps per second; LM^A's linear pitch probe (:mod:`agents.lm.probe`)
against the same probe on its input; each mapping's retrieval against chance, of pooled states and of
every frame's states compared as sequences (``sequence_accuracy``), and of pooled states on val pieces
(``val_accuracy``: where to choose a setting, such as ``--audio-pool`` / ``--score-pool``, the frames a moment's
states are averaged over); with several ``--seeds`` each mapping is fitted once per seed (the first seed's saved as
``mapping_<method>_K<K>.pt``, the others as ``mapping_<method>_K<K>_s<seed>.pt``) and ``summary`` gives the mean
and 95% t-interval over them.

Training is checkpointed in ``out/checkpoints``: the same command run again resumes where it stopped, and ends
with the weights an uninterrupted run has. ``--stop-after-steps N`` takes at most N more steps per LM in this
call (a session with a time limit) and exits 3 when an LM is not finished yet.

``--pairs-only`` adds the reference that shows what the unpaired pools add: for each K, the same LMs (size, steps)
trained on the K paired pieces alone (their audio for LM^A, their scores for LM^V), mapped by the methods that
use no unpaired data (``regression``, ``contrastive``, ``contrastive_mlp``) and measured on the same held-out pieces.

``--lms-from DIR`` maps the LMs of a finished call (DIR's ``lm_v.pt`` and ``lm_a.pt``, copied into ``--out``)
instead of training new ones, so a mapping of other settings (``--audio-pool``, layers, methods) takes minutes.

``--merge`` joins the reports of several calls that trained the same LMs (say one per budget, run side by side)
into one ``report.json``, summary and ``retrieval.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agents.lm.audio import train_audio_lm
from agents.lm.data import AUDIO_CONTEXT, SCORE_POSITION
from agents.lm.mapping import (
    AUDIO_LAYER,
    METHODS,
    POOL_AUDIO,
    POOL_SCORE,
    SCORE_LAYER,
    check_pools,
    fit_mapping,
    held_out_ids,
    mapping_name,
    retrieval_accuracy,
    validation_ids,
)
from agents.lm.model import SIZES, FrameLM, check_layer, resolve_device
from agents.lm.probe import PROBE_PIECES, pitch_probe
from agents.lm.symbolic import train_symbolic_lm
from agents.lm.training import LMRun
from lmm_envs.errors import ConfigError, LMMError
from lmm_envs.music import corpus

PAIRS_ONLY_METHODS = ("regression", "contrastive", "contrastive_mlp")  # the methods that read no unpaired data
UNFINISHED = 3  # exit status when --stop-after-steps left an LM unfinished


def _summary(run: LMRun, seconds: float) -> dict:
    tail = run.losses[-50:]
    return {"pieces": len(run.ids), "loss_first": run.losses[0], "loss_last": sum(tail) / len(tail),
            "held_out_pieces": len(run.held_out_ids), "held_out_loss": run.held_out_loss,
            "seconds": seconds, "steps_per_second": len(run.losses) / seconds if seconds > 0 else None}


def _retrievals(lm_a, lm_v, mapping) -> dict:
    """Retrieval of the mapped pooled states (``accuracy``), and of the mapped states of every frame compared as
    sequences (``sequence_accuracy``), on the held-out paired pieces; and pooled on val pieces (``val_accuracy``,
    where to choose settings such as the pooling spans)."""
    return {**retrieval_accuracy(lm_a, lm_v, mapping),
            "sequence_accuracy": retrieval_accuracy(lm_a, lm_v, mapping, compare="sequence")["accuracy"],
            "val_accuracy": retrieval_accuracy(lm_a, lm_v, mapping, piece_ids=validation_ids())["accuracy"]}


def summarise(mappings: list[dict]) -> list[dict]:
    """Per budget, method and kind of LMs: the mean and 95% t-interval over seeds of each retrieval figure."""
    from agents.hear import interval

    groups: dict[tuple, list[dict]] = {}
    for m in mappings:
        groups.setdefault((m["paired_budget"], m["method"], m["lms"]), []).append(m)
    return [{"paired_budget": k, "method": method, "lms": lms, "seeds": [r.get("seed", 0) for r in rows],
             **{key: interval([r[key] for r in rows]) for key in ("accuracy", "sequence_accuracy", "val_accuracy")
                if all(key in r for r in rows)}}
            for (k, method, lms), rows in groups.items()]


def _fit_rows(lm_a: FrameLM, lm_v: FrameLM, k: int, methods: tuple[str, ...], seeds: tuple[int, ...],
              settings: dict, lms: str, save_to: Path | None = None) -> list[dict]:
    """Fit each method once per seed at budget ``k`` with ``settings`` (pooling spans and layers) and measure it:
    the report's rows (``lms`` names the LMs). With ``save_to``, each mapping is saved there, the first seed's under
    the name the ``lmm`` features read."""
    rows = []
    for method in methods:
        for seed in seeds:
            mapping = fit_mapping(lm_a, lm_v, k, method, seed=seed, **settings)
            if save_to is not None:
                mapping.save(save_to / mapping_name(method, k, seed if seed != seeds[0] else None))
            used = {key: getattr(mapping, key) for key in settings}  # predictive keeps LM^V's output
            rows.append({"paired_budget": k, "method": method, "lms": lms, "seed": seed, **used,
                         **_retrievals(lm_a, lm_v, mapping)})
    return rows


def pretrain(out: str | Path, size: str = "small", lm_steps: int = 1500, budgets: tuple[int, ...] = (8, 64),
             methods: tuple[str, ...] = METHODS, device: str = "auto", pool_limit: int | None = None,
             progress: bool = True, pairs_only: bool = False, stop_after: int | None = None,
             probe: bool = True, audio_pool: int = POOL_AUDIO, score_pool: int = POOL_SCORE,
             audio_layer: int | None = AUDIO_LAYER, score_layer: int | None = SCORE_LAYER,
             seeds: tuple[int, ...] = (0,), lms_from: str | Path | None = None) -> dict:
    """Train and save everything into ``out``; returns the report (also written to ``out/report.json``). When
    ``stop_after`` leaves an LM unfinished, returns ``{"finished": False, ...}`` with the checkpoints saved and
    nothing else written. ``audio_pool`` / ``score_pool``: the frames each mapping averages a moment's states over,
    ``audio_layer`` / ``score_layer`` the blocks whose states it maps (:func:`~agents.lm.mapping.fit_mapping`).
    Each mapping is fitted once per seed of ``seeds`` (which pairs of frames it draws, and the MLP's start); the
    first seed's is saved as ``mapping_<method>_K<k>.pt``, the one the
    ``lmm`` features read, the others as ``mapping_<method>_K<k>_s<seed>.pt``. The pairs-only LMs are checkpointed
    as ``checkpoints/pairs_only_K<k>_lm_v.pt`` / ``_lm_a.pt``, so a second call reuses them, and saved with their
    mappings in ``pairs_only_K<k>/``, a folder laid out as ``out`` is (``--lm-dir out/pairs_only_K8``).

    ``lms_from``: a folder of trained LMs (``lm_v.pt`` and ``lm_a.pt``, as this function writes them) to map
    instead of training new ones: they are copied into ``out`` (``size`` and ``lm_steps`` are then theirs), so
    mappings of other settings (pooling spans, layers, methods) are fitted in minutes beside the LMs they map."""
    check_pools(audio_pool, score_pool)  # before hours of LM training, not at the first mapping
    if lms_from is not None:
        return _map_trained_lms(Path(lms_from), Path(out), budgets, methods, probe,
                                {"audio_pool": audio_pool, "score_pool": score_pool, "audio_layer": audio_layer,
                                 "score_layer": score_layer}, seeds)
    if size in SIZES:
        check_layer(audio_layer, SIZES[size]["n_layers"], "audio_layer")
        check_layer(score_layer, SIZES[size]["n_layers"], "score_layer")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    checkpoints = out / "checkpoints"
    start = time.perf_counter()
    runs = {}
    for name, train in (("lm_v", train_symbolic_lm), ("lm_a", train_audio_lm)):
        began = time.perf_counter()
        run = train(size, lm_steps, pool_limit, device, progress=progress, checkpoint=checkpoints / f"{name}.pt",
                    stop_after=stop_after)
        runs[name] = (run, time.perf_counter() - began)
    if not all(run.finished for run, _ in runs.values()):
        return {"finished": False, "steps": {name: len(run.losses) for name, (run, _) in runs.items()},
                "lm_steps": lm_steps}
    (lm_v, v_seconds), (lm_a, a_seconds) = runs["lm_v"], runs["lm_a"]
    lm_v.model.save(out / "lm_v.pt")
    lm_a.model.save(out / "lm_a.pt")
    report = {"finished": True, "device": device, "size": size, "lm_steps": lm_steps,
              "lm_v": _summary(lm_v, v_seconds), "lm_a": _summary(lm_a, a_seconds), "mappings": []}
    if probe:
        report["lm_a"]["pitch_probe"] = pitch_probe(lm_a.model, corpus.paired_ids(PROBE_PIECES), held_out_ids())
    settings = {"audio_pool": audio_pool, "score_pool": score_pool, "audio_layer": audio_layer,
                "score_layer": score_layer}
    for k in budgets:
        report["mappings"] += _fit_rows(lm_a.model, lm_v.model, k, methods, seeds, settings, "unpaired pools", out)
        if pairs_only:
            ids = corpus.paired_ids(k)
            ref_v = train_symbolic_lm(size, lm_steps, None, device, progress=progress, ids=ids,
                                      checkpoint=checkpoints / f"pairs_only_K{k}_lm_v.pt").model
            ref_a = train_audio_lm(size, lm_steps, None, device, progress=progress, ids=ids,
                                   checkpoint=checkpoints / f"pairs_only_K{k}_lm_a.pt").model
            ref_methods = tuple(m for m in methods if m in PAIRS_ONLY_METHODS)
            reference = out / f"pairs_only_K{k}"  # laid out as ``out`` is, for any --lm-dir reader
            reference.mkdir(exist_ok=True)
            ref_v.save(reference / "lm_v.pt")
            ref_a.save(reference / "lm_a.pt")
            report["mappings"] += _fit_rows(ref_a, ref_v, k, ref_methods, seeds, settings, "pairs only", reference)
    report["summary"] = summarise(report["mappings"])
    report["seconds"] = time.perf_counter() - start
    _write_report(out, report)
    return report


def _map_trained_lms(source: Path, out: Path, budgets: tuple[int, ...], methods: tuple[str, ...], probe: bool,
                     settings: dict, seeds: tuple[int, ...]) -> dict:
    """:func:`pretrain` with ``lms_from``: the LMs of ``source`` copied into ``out`` and mapped with ``settings``;
    the LMs' rows of the report come from ``source/report.json`` where it has them."""
    paths = [source / f"{name}.pt" for name in ("lm_v", "lm_a")]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(f"--lms-from {source}: no {', '.join(missing)}; give a folder python -m agents.pretrain "
                          "wrote (it holds lm_v.pt and lm_a.pt)")
    if out.resolve() == source.resolve():
        raise ConfigError(f"--lms-from {source} is --out too; write the new mappings to another folder, so that the "
                          "mappings beside those LMs stay as they are")
    start = time.perf_counter()
    lm_v, lm_a = FrameLM.load(paths[0]), FrameLM.load(paths[1])
    check_layer(settings["audio_layer"], lm_a.config.n_layers, "audio_layer")
    check_layer(settings["score_layer"], lm_v.config.n_layers, "score_layer")
    out.mkdir(parents=True, exist_ok=True)
    lm_v.save(out / "lm_v.pt")
    lm_a.save(out / "lm_a.pt")
    known = source / "report.json"
    earlier = json.loads(known.read_text()) if known.is_file() else {}
    report = {"finished": True, "device": "cpu", "lms_from": str(source),
              **{key: earlier[key] for key in ("size", "lm_steps", "lm_v", "lm_a") if key in earlier},
              "mappings": []}
    report.setdefault("lm_v", {})
    report.setdefault("lm_a", {})
    if probe and "pitch_probe" not in report["lm_a"]:
        report["lm_a"]["pitch_probe"] = pitch_probe(lm_a, corpus.paired_ids(PROBE_PIECES), held_out_ids())
    for k in budgets:
        report["mappings"] += _fit_rows(lm_a, lm_v, k, methods, seeds, settings, "unpaired pools", out)
    report["summary"] = summarise(report["mappings"])
    report["seconds"] = time.perf_counter() - start
    _write_report(out, report)
    return report


def _lm_weights(run: Path) -> dict[str, dict]:
    """A run's LM^V and LM^A weights (``state_dict``s), by name."""
    import torch

    return {name: torch.load(run / f"{name}.pt", map_location="cpu", weights_only=True)["state_dict"]
            for name in ("lm_v", "lm_a")}


def _same_weights(a: dict[str, dict], b: dict[str, dict]) -> bool:
    """Whether two runs' LMs (:func:`_lm_weights`) hold the same weights (their files may differ in bytes only)."""
    import torch

    return all(a[name].keys() == b[name].keys() and all(torch.equal(a[name][k], b[name][k]) for k in a[name])
               for name in a)


def _write_report(out: Path, report: dict) -> None:
    """``report.json`` (written whole or not at all) and ``retrieval.png`` drawn from it."""
    from lmm_envs.files import atomic_path

    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    plot_retrieval(report, out / "retrieval.png")


def merge(runs: list[Path], out: Path) -> dict:
    """One report (rows, summary over seeds, plot) from finished calls that trained the same LMs, such as one
    call per budget run side by side; refuses runs of other LMs and a mapping (K, method, LMs, seed) measured
    twice."""
    parts = []
    for run in runs:
        path = run / "report.json"
        part = json.loads(path.read_text()) if path.is_file() else {}
        if not part.get("finished"):
            raise LMMError(f"no finished report.json in {run}; give the --out folders of finished runs")
        if not all((run / f"{name}.pt").is_file() for name in ("lm_v", "lm_a")):
            raise LMMError(f"no lm_v.pt and lm_a.pt in {run}; give the --out folders of finished runs")
        parts.append(part)
    first_lms = _lm_weights(runs[0])
    for run in runs[1:]:
        if not _same_weights(first_lms, _lm_weights(run)):
            raise LMMError(f"{run} holds other LMs than {runs[0]}; merge only calls that trained the same LMs")
    first = parts[0]
    report = {"finished": True, "merged_from": [str(r) for r in runs], "device": first["device"],
              "size": first["size"], "lm_steps": first["lm_steps"], "lm_v": first["lm_v"], "lm_a": first["lm_a"],
              "mappings": [], "seconds": sum(part.get("seconds", 0.0) for part in parts)}
    seen: dict[tuple, Path] = {}
    for run, part in zip(runs, parts, strict=True):
        for row in part["mappings"]:
            key = (row["paired_budget"], row["method"], row["lms"], row.get("seed", 0))
            if key in seen:
                raise LMMError(f"{seen[key]} and {run} both measured K={key[0]} {key[1]} ({key[2]}, seed {key[3]}); "
                               "merge calls of different budgets, methods or seeds")
            seen[key] = run
            report["mappings"].append(row)
    report["summary"] = summarise(report["mappings"])
    out.mkdir(parents=True, exist_ok=True)
    _write_report(out, report)
    return report


def plot_retrieval(report: dict, path: str | Path, h_report: dict | None = None) -> None:
    """Retrieval against K: one line per method and kind of LMs (the pools, or the pairs-only reference), with
    chance; given ``python -m agents.hear``'s report, also retrieval through h (chord sequences, mean and 95%
    interval over seeds) and the task's ceilings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 4.5))
    lines: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for m in report.get("summary") or summarise(report["mappings"]):
        lines.setdefault((m["method"], m["lms"]), []).append((m["paired_budget"], m["accuracy"]))
    for method, color in zip(METHODS, ("C0", "C1", "C2", "C5"), strict=True):  # C3 is h's
        for lms, style in (("unpaired pools", "-"), ("pairs only", ":")):
            points = sorted(lines.get((method, lms), []), key=lambda point: point[0])
            if points:
                ax.errorbar([k for k, _ in points], [r["mean"] for _, r in points], fmt=style, marker="o",
                            color=color, capsize=3,
                            yerr=[[r["mean"] - r["low"] for _, r in points], [r["high"] - r["mean"] for _, r in points]],
                            label=f"LM mapping, {method} ({'LMs from the pools' if lms == 'unpaired pools' else 'LMs from the K pairs alone'})")
    if h_report is not None:
        for kind, style, label in (("abs", "-", "through h (synthesis + K pairs), sequences"),
                                   ("pairs", ":", "through the K-pairs-alone network, sequences")):
            rows = sorted((s["paired_budget"], s["retrieval_sequence"]) for s in h_report["summary"]
                          if s["kind"] == kind and "retrieval_sequence" in s)
            if rows:
                ax.errorbar([k for k, _ in rows], [r["mean"] for _, r in rows], fmt=style, marker="s", color="C3",
                            yerr=[[r["mean"] - r["low"] for _, r in rows], [r["high"] - r["mean"] for _, r in rows]],
                            capsize=3, label=label)
        ceiling = h_report.get("retrieval_ceiling", {})
        if "score_window_itself" in ceiling:
            ax.axhline(ceiling["score_window_itself"], linestyle="--", color="C4", lw=0.8,
                       label="ceiling: the score up to the place, itself")
    ax.axhline(1 / 16, linestyle="-.", color="black", lw=0.8, label="chance (1/16)")
    ax.set_xscale("log")
    budgets = sorted({m["paired_budget"] for m in report["mappings"]})
    ax.set_xticks(budgets, [str(k) for k in budgets])
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_xlabel("paired pieces K")
    ax.set_ylabel("top-1 retrieval among 16 moments")
    ax.set_title(f"score moment from audio, held-out paired pieces ({report.get('size', '?')} LMs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _layer(text: str) -> int | None:
    """``--audio-layer`` / ``--score-layer``: a block number, or ``output``."""
    if text == "output":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a block number or 'output', got {text!r}") from None


def _layer_name(layer: int | None) -> str:
    return "output" if layer is None else str(layer)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.pretrain", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lm")
    ap.add_argument("--size", default="small", choices=list(SIZES))
    ap.add_argument("--lm-steps", type=int, default=1500)
    ap.add_argument("--paired-budget", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--method", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pool-limit", type=int, default=0, help="use only the first N pieces of each unpaired pool")
    ap.add_argument("--pairs-only", action="store_true",
                    help="also the reference: the same LMs trained on the K paired pieces alone")
    ap.add_argument("--stop-after-steps", type=int, default=0,
                    help="take at most N more steps per LM now; run the same command again to resume")
    ap.add_argument("--no-probe", action="store_true", help="skip LM^A's pitch probe")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="fit each mapping once per seed (the pairs of frames drawn, the MLP's start)")
    ap.add_argument("--audio-pool", type=int, default=POOL_AUDIO,
                    help=f"frames of LM^A states averaged into an audio moment (1 to {AUDIO_CONTEXT})")
    ap.add_argument("--score-pool", type=int, default=POOL_SCORE,
                    help=f"frames of LM^V states up to the agent's place averaged into a score moment "
                         f"(1 to {SCORE_POSITION + 1})")
    ap.add_argument("--audio-layer", type=_layer, default=AUDIO_LAYER,
                    help="the LM^A block whose states are mapped (0: its embedding; -1: its last block; 'output': "
                         f"after its last block and final norm; default {_layer_name(AUDIO_LAYER)})")
    ap.add_argument("--score-layer", type=_layer, default=SCORE_LAYER,
                    help="the LM^V block whose states are mapped onto (the predictive mapping keeps 'output', "
                         f"which LM^V's head reads; default {_layer_name(SCORE_LAYER)})")
    ap.add_argument("--plot-only", action="store_true",
                    help="only redraw <out>/retrieval.png from <out>/report.json (with --h-report)")
    ap.add_argument("--merge", nargs="+", type=Path, metavar="RUN",
                    help="only merge the reports of finished calls that trained the same LMs into --out")
    ap.add_argument("--h-report", type=Path, help="python -m agents.hear's report.json, added to the plot")
    ap.add_argument("--lms-from", type=Path, metavar="DIR",
                    help="map the LMs a finished call wrote to DIR (copied into --out) instead of training new ones: "
                         "mappings of other settings in minutes")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.plot_only:
        return _replot(Path(args.out), args.h_report)
    if args.merge:
        try:
            report = merge(args.merge, Path(args.out))
        except LMMError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        _print_summary(report)
        print(f"wrote {Path(args.out) / 'report.json'} and retrieval.png from {len(args.merge)} runs")
        return 0
    if args.lm_steps < 1 or args.stop_after_steps < 0:
        print("error: --lm-steps must be at least 1 and --stop-after-steps not negative", file=sys.stderr)
        return 2
    if not 1 <= args.audio_pool <= AUDIO_CONTEXT or not 1 <= args.score_pool <= SCORE_POSITION + 1:
        print(f"error: --audio-pool must be 1 to {AUDIO_CONTEXT} and --score-pool 1 to {SCORE_POSITION + 1} frames",
              file=sys.stderr)
        return 2
    try:
        report = pretrain(args.out, args.size, args.lm_steps, tuple(args.paired_budget), tuple(args.method),
                          args.device, args.pool_limit or None, progress=not args.quiet, pairs_only=args.pairs_only,
                          stop_after=args.stop_after_steps or None, probe=not args.no_probe,
                          audio_pool=args.audio_pool, score_pool=args.score_pool, audio_layer=args.audio_layer,
                          score_layer=args.score_layer, seeds=tuple(args.seeds), lms_from=args.lms_from)
    except (ValueError, LMMError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not report["finished"]:
        steps = ", ".join(f"{name} {n}/{report['lm_steps']}" for name, n in report["steps"].items())
        print(f"stopped with {steps} steps, checkpointed in {args.out}/checkpoints; run the same command to resume")
        return UNFINISHED
    for name in ("lm_v", "lm_a"):
        lm = report[name]
        if "held_out_loss" not in lm:  # --lms-from a folder without its report
            continue
        print(f"{name}: held-out next-frame loss {lm['held_out_loss']:.4f} (training {lm['loss_last']:.4f}), "
              f"{lm['steps_per_second']:.1f} steps/s, {lm['seconds']:.0f} s")
    if "pitch_probe" in report["lm_a"]:
        p = report["lm_a"]["pitch_probe"]
        print(f"LM^A pitch probe F1 {p['f1']:.3f} (the same probe on the input frame: {p['input_f1']:.3f})")
    for m in report["mappings"]:
        print(f"K={m['paired_budget']:<4} {m['method']:<15} LMs from {m['lms']:<14} seed {m.get('seed', 0)} "
              f"retrieval {m['accuracy']:.3f} "
              + (f"(as sequences {m['sequence_accuracy']:.3f}) " if "sequence_accuracy" in m else "")
              + (f"(val {m['val_accuracy']:.3f}) " if "val_accuracy" in m else "")
              + f"(chance {m['chance']:.3f}, {m['queries']} queries)")
    _print_summary(report)
    print(f"wrote {args.out} in {report['seconds']:.0f} s on {report['device']}")
    return 0


def _print_summary(report: dict) -> None:
    """The mean and 95% interval over seeds of each mapping fitted with several."""
    for m in report["summary"]:
        if len(m["seeds"]) > 1:
            r = m["accuracy"]
            print(f"K={m['paired_budget']:<4} {m['method']:<15} LMs from {m['lms']:<14} over seeds "
                  f"{', '.join(map(str, m['seeds']))}: retrieval {r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}]")


def _replot(out: Path, h_report: Path | None) -> int:
    paths = [out / "report.json"] + ([h_report] if h_report else [])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no {', '.join(missing)}; run python -m agents.pretrain (and agents.hear) first",
              file=sys.stderr)
        return 2
    plot_retrieval(json.loads(paths[0].read_text()), out / "retrieval.png",
                   json.loads(h_report.read_text()) if h_report else None)
    print(f"wrote {out / 'retrieval.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
