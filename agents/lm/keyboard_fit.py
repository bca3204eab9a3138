"""The piano's keyboard fitted on the K pairs: what pairs can give the score played through the piano.

The comparison M -> A (:func:`agents.lm.mapping.piano_distance`) plays the agent's score window through a keyboard,
each key's spectrum, and compares the result with the heard frames. With h's keyboard (the harmonic synth's
first frames of each key) it knows the instrument the envs render exactly and needs no pairs. A user's instrument
is not the harmonic synth. A paired piece says which keys sound at every audio frame (the score's sounding keys at
the frame's aligned place), and the frames are, to a first approximation, the sum of the sounding keys' spectra:
the keyboard is fitted by ridge least squares in linear amplitude, pulled towards a prior keyboard (h's), so that
a key no pair plays keeps the prior's spectrum and more pairs move more keys. The fit sees every frame a key
sounds in, held and decaying ones as well as its attack.

``python -m agents.lm.keyboard_fit --paired-budget 8 64 208 --synth harmonic fluidsynth --out
runs/keyboard_fit.json --plot docs/keyboard_fit.png`` reports, per synth that renders the pieces, held-out
retrieval among 16 moments by the piano alone with h's keyboard (no pairs), with the keyboard of that synth's own
single notes (the instrument known exactly, as h's is for ``harmonic``: the ceiling of a keyboard of first frames),
and with the keyboard fitted on the first K paired pieces rendered by that synth (the ridge chosen on the val
pieces). Every synth is heard at the same moments. Intervals are 95% bootstrap intervals over the held-out
pieces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

RIDGES = (1.0, 10.0, 100.0, 1000.0)  # in frames: how many frames of evidence a key's prior spectrum weighs
FIT_VERSION = 1


def sounding_per_frame(piece: dict) -> np.ndarray:
    """``(audio frames, 88)`` float64: the keys sounding at each audio frame's aligned score place."""
    return piece["sounding"][piece["position"]].astype(np.float64)


class KeyboardFit:
    """The running sums of a ridge fit ``frames ~ sounding @ keyboard`` over paired pieces, added one piece at a
    time, so that the fits on the first 8, 64 and 208 pairs come from one pass."""

    def __init__(self, prior: np.ndarray):
        self.prior = np.asarray(prior, dtype=np.float64)
        keys = self.prior.shape[0]
        self.gram = np.zeros((keys, keys))
        self.cross = np.zeros_like(self.prior)
        self.frames = 0

    def add(self, piece: dict) -> None:
        """Add a paired piece's frames: its audio in linear amplitude against the keys sounding at each frame."""
        from agents.lm.mapping import _pixels
        from agents.lm.transcription import linear_frames

        self.add_frames(sounding_per_frame(piece), linear_frames(_pixels(piece)))

    def add_frames(self, keys: np.ndarray, heard: np.ndarray) -> None:
        """Add ``(frames, 88)`` sounding keys and the ``(frames, bins)`` linear spectra heard with them."""
        keys, heard = np.asarray(keys, dtype=np.float64), np.asarray(heard, dtype=np.float64)
        if keys.shape[0] != heard.shape[0] or keys.shape[1] != self.gram.shape[0]:
            raise ValueError(f"keys {keys.shape} and heard {heard.shape} frames do not match the keyboard "
                             f"{self.prior.shape}")
        self.gram += keys.T @ keys
        self.cross += keys.T @ heard
        self.frames += len(keys)

    def keyboard(self, ridge: float) -> np.ndarray:
        """The fitted ``(88, bins)`` keyboard, non-negative, float32: ``argmin |S K - F|^2 + ridge |K - prior|^2``."""
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        system = self.gram + ridge * np.eye(len(self.gram))
        fitted = np.linalg.solve(system, self.cross + ridge * self.prior)
        return np.maximum(fitted, 0.0).astype(np.float32)


def harmonic_keyboard() -> np.ndarray:
    """h's keyboard: the harmonic synth's keys, each the mean of its first frames (what ``KeyNet.basis`` holds)."""
    return synth_keyboard("harmonic")


def synth_keyboard(synth: str) -> np.ndarray:
    """A synth's own keyboard from its single notes (:meth:`lmm_envs.audio.keyboard.Keyboard.mean_spectrum`)."""
    from lmm_envs.audio.keyboard import make_keyboard
    from lmm_envs.audio.synth import make_synth

    return make_keyboard(make_synth(synth)).mean_spectrum().astype(np.float32)


def moments(piece_ids: list[str], synth: str, candidates: int = 16, seed: int = 0) -> list[tuple[dict, np.ndarray]]:
    """Each piece rendered by ``synth`` with its retrieval moments: the pieces and moments of
    :func:`agents.lm.mapping.retrieval_accuracy` for the same ``seed``, drawn on the harmonic synth's renderings for
    every synth (the same performance; another synth's release tail may add frames after its end), so that two
    synths are compared moment for moment."""
    from agents.lm.data import load_paired
    from agents.lm.mapping import retrieval_moments

    rng = np.random.default_rng(seed)
    drawn = [retrieval_moments(pid, rng, candidates) for pid in piece_ids]
    if synth == "harmonic":
        return drawn
    return [(load_paired(pid, synth=synth), times) for pid, (_, times) in zip(piece_ids, drawn, strict=True)]


@torch.no_grad()
def piece_hits(keyboard: np.ndarray, pieces: list[tuple[dict, np.ndarray]]) -> np.ndarray:
    """Per piece, the retrieval hits of the score played through ``keyboard`` (:func:`own_share` of each piece's
    queries)."""
    from agents.lm.mapping import own_share, piano_distance

    return np.array([own_share(-piano_distance(keyboard, piece, times)) for piece, times in pieces])


def share_with_interval(hits: np.ndarray, queries: int, seed: int = 0, draws: int = 2000) -> dict:
    """The share of hits over all queries, with a 95% bootstrap interval over the pieces."""
    rng = np.random.default_rng(seed)
    boot = rng.choice(hits, size=(draws, len(hits)), replace=True).sum(axis=1) / queries
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"share": float(hits.sum() / queries), "ci": [float(low), float(high)]}


def evaluate(paired_budgets: list[int], synths: list[str], ridges: tuple[float, ...] = RIDGES, candidates: int = 16,
             seed: int = 0, progress: bool = True) -> dict:
    """For each synth: held-out retrieval by the piano alone with h's keyboard, with the synth's own, and fitted on
    the first K paired pieces for each K (its ridge chosen on the val pieces)."""
    from tqdm import tqdm

    from agents.lm.data import load_paired
    from agents.lm.mapping import held_out_ids, validation_ids
    from lmm_envs.music import corpus

    budgets = sorted(set(paired_budgets))
    pairs = corpus.paired_ids(budgets[-1])  # checks the largest budget against the pool
    prior = harmonic_keyboard()
    report = {"version": FIT_VERSION, "candidates": candidates, "seed": seed, "ridges": list(ridges), "synths": {}}
    for synth in synths:
        val, held_out = moments(validation_ids(), synth, candidates, seed), moments(held_out_ids(), synth, candidates,
                                                                                 seed)
        queries = sum(len(times) for _, times in held_out)
        rows = {"h_keyboard": share_with_interval(piece_hits(prior, held_out), queries, seed),
                "own_keyboard": share_with_interval(piece_hits(synth_keyboard(synth), held_out), queries, seed),
                "fitted": []}
        fit = KeyboardFit(prior)
        added = 0
        for k in tqdm(budgets, desc=f"keyboards fitted ({synth})", disable=not progress):
            for pid in pairs[added:k]:
                fit.add(load_paired(pid, synth=synth))
            added = k
            on_val = {ridge: float(piece_hits(fit.keyboard(ridge), val).sum()) for ridge in ridges}
            ridge = max(ridges, key=lambda r: (on_val[r], r))  # ties towards the stronger prior
            rows["fitted"].append({"paired_budget": k, "ridge": ridge, "frames": fit.frames,
                                   "val": {str(r): v / sum(len(t) for _, t in val) for r, v in on_val.items()},
                                   **share_with_interval(piece_hits(fit.keyboard(ridge), held_out), queries, seed)})
        rows["queries"] = queries
        report["synths"][synth] = rows
    return report


def plot(report: dict, path: Path) -> None:
    """Held-out retrieval against K, one panel per synth: the fitted keyboard with its interval, h's and the
    synth's own as flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synths = list(report["synths"])
    fig, axes = plt.subplots(1, len(synths), figsize=(4.5 * len(synths), 3.6), sharey=True, squeeze=False)
    for ax, synth in zip(axes[0], synths, strict=True):
        rows = report["synths"][synth]
        ks = [r["paired_budget"] for r in rows["fitted"]]
        shares = [r["share"] for r in rows["fitted"]]
        low = [r["ci"][0] for r in rows["fitted"]]
        high = [r["ci"][1] for r in rows["fitted"]]
        ax.plot(ks, shares, "o-", label="keyboard fitted on K pairs")
        ax.fill_between(ks, low, high, alpha=0.2)
        ax.axhline(rows["h_keyboard"]["share"], color="grey", ls="--", label="h's keyboard (no pairs)")
        ax.axhline(rows["own_keyboard"]["share"], color="black", ls=":", label=f"{synth}'s own single notes")
        ax.axhline(1.0 / report["candidates"], color="red", lw=0.8, label="chance")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("paired pieces K")
        ax.set_title(f"audio rendered by {synth}")
    axes[0][0].set_ylabel(f"held-out top-1 among {report['candidates']}")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    from lmm_envs.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def check_synths(synths: list[str], candidates: int) -> None:
    """The checks both retrieval CLIs make of their ``--synth`` and ``--candidates`` (an ``LMMError`` each)."""
    from lmm_envs.audio.synth import SYNTHS
    from lmm_envs.errors import LMMError

    unknown = [s for s in synths if s not in SYNTHS]
    if unknown:
        raise LMMError(f"unknown synth {unknown[0]!r}; choose from {', '.join(SYNTHS)}")
    if candidates < 2:
        raise LMMError(f"--candidates must be at least 2, got {candidates}")


def main(argv: list[str] | None = None) -> int:
    from lmm_envs.errors import LMMError
    from lmm_envs.files import atomic_path

    ap = argparse.ArgumentParser(prog="python -m agents.lm.keyboard_fit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--paired-budget", type=int, nargs="+", default=[8, 64, 208])
    ap.add_argument("--synth", nargs="+", default=["harmonic", "fluidsynth"],
                    help="what renders the pieces' audio, one evaluation each (default: harmonic fluidsynth)")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    ap.add_argument("--plot", type=Path, help="a PNG of retrieval against K")
    args = ap.parse_args(argv)
    try:
        check_synths(args.synth, args.candidates)
        for path in (args.out, args.plot):
            if path is not None and not path.parent.is_dir():
                raise LMMError(f"the folder of {path} does not exist; create it first")
        report = evaluate(args.paired_budget, args.synth, candidates=args.candidates, seed=args.seed)
    except LMMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)
    for synth, rows in report["synths"].items():
        print(f"{synth}: h's keyboard {rows['h_keyboard']['share']:.3f}, own {rows['own_keyboard']['share']:.3f}, "
              + ", ".join(f"fitted K={r['paired_budget']} {r['share']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
                          for r in rows["fitted"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
