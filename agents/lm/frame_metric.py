"""A frame metric learned on the K pairs for the score rendered through the envs' synth.

:func:`agents.lm.rendered.rendered_distance` compares the heard window with the deadpan rendering of the score up
to a place, frame by frame, by the cosine of two spectrum frames: it needs no pairs, and nothing in it can learn
from them. Here the K paired pieces teach the frame comparison itself. Two small causal towers (one for heard
frames, one for rendered frames; each sees a frame and the :data:`CONTEXT` - 1 before it) embed every frame, trained
by InfoNCE on the pairs: a heard frame against the rendered frame its alignment gives, the negatives the rendered
frames of other places in the same piece (the retrieval task's own confusions). The learned distance is
:func:`agents.lm.mapping.end_aligned_distance` over the embedded frames: the same dynamic time warping, so the
performer's tempo still drops out.

The hypothesis: a metric with some capacity needs more than 8 pieces to learn what separates a performance from its
rendering (dynamics, pedal, how a chord's onset spreads), so it gains from pairs where a linear map on LM^A's
states did not. The training length (from :data:`STEPS`) and its share in a mix with the pair-free rendered distance
are chosen on the val pieces; held-out retrieval among 16 moments as :mod:`agents.lm.rendered` measures it:

    python -m agents.lm.frame_metric --paired-budget 8 64 208 --out runs/frame_metric.json \\
        --plot docs/retrieval_frame_metric.png
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

CONTEXT = 5  # frames each embedding sees: the frame and the ones before it (a live agent's past only)
STEPS = (500, 2000, 8000)  # training lengths to choose from on val (one run, kept at each)
BATCH = 64  # aligned frames of one piece per step, each the others' negatives
MIN_APART = 3  # score frames between any two places of a batch (a held chord's frames are not negatives)


class FrameTower(nn.Module):
    """``(frames, bins) -> (frames, dim)``: a causal convolution over :data:`CONTEXT` frames and two 1x1 layers."""

    def __init__(self, bins: int = 75, width: int = 128, dim: int = 32):
        super().__init__()
        self.context = nn.Conv1d(bins, width, CONTEXT)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(width, width, 1), nn.ReLU(), nn.Conv1d(width, dim, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(frames.T[None], (CONTEXT - 1, 0))  # zeros before the first frame: causal
        return self.head(self.context(x))[0].T


class FrameMetric(nn.Module):
    """A heard tower and a rendered tower; :meth:`heard` and :meth:`rendered` embed a window's frames."""

    def __init__(self, bins: int = 75):
        super().__init__()
        self.heard_tower, self.rendered_tower = FrameTower(bins), FrameTower(bins)

    @torch.no_grad()
    def heard(self, frames: np.ndarray) -> np.ndarray:
        return self.heard_tower(torch.as_tensor(frames, dtype=torch.float32)).numpy()

    @torch.no_grad()
    def rendered(self, frames: np.ndarray) -> np.ndarray:
        return self.rendered_tower(torch.as_tensor(frames, dtype=torch.float32)).numpy()


def aligned_pair(piece_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A paired piece as training needs it: its heard frames, its deadpan rendering, and per heard frame the
    rendered frame at the same score place."""
    from agents.lm.data import load_paired
    from agents.lm.rendered import rendered_frames

    piece, rendered = load_paired(piece_id), rendered_frames(piece_id)
    return piece["audio"], rendered, np.minimum(piece["position"], len(rendered) - 1)


def _batch_times(position: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Up to ``size`` heard frames in random order whose score places are at least :data:`MIN_APART` apart."""
    chosen: list[int] = []
    places: list[int] = []
    for t in rng.permutation(len(position)):
        place = int(position[t])
        if all(abs(place - p) >= MIN_APART for p in places):
            chosen.append(int(t))
            places.append(place)
            if len(chosen) == size:
                break
    return np.array(chosen)


def _embedded_at(tower: FrameTower, frames: np.ndarray, at: np.ndarray) -> torch.Tensor:
    """The tower's embeddings of ``frames`` at the indices ``at``, from the span that covers them."""
    lo, hi = max(0, int(at.min()) - CONTEXT), int(at.max()) + 1
    return tower(torch.as_tensor(frames[lo:hi], dtype=torch.float32))[at - lo]


def info_nce(metric: FrameMetric, pair: tuple[np.ndarray, np.ndarray, np.ndarray], times: np.ndarray,
             temperature: float) -> torch.Tensor:
    """The symmetric InfoNCE loss of the heard frames at ``times`` against their rendered frames, each the
    others' negatives."""
    audio, rendered, position = pair
    heard = nn.functional.normalize(_embedded_at(metric.heard_tower, audio, times), dim=1)
    read = nn.functional.normalize(_embedded_at(metric.rendered_tower, rendered, position[times]), dim=1)
    logits = heard @ read.T / temperature
    target = torch.arange(len(times))
    return (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2


def train_metric(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], steps: tuple[int, ...] = STEPS,
                 seed: int = 0, temperature: float = 0.1, lr: float = 1e-3,
                 progress: bool = True) -> dict[int, FrameMetric]:
    """One training run on ``pairs`` (:func:`aligned_pair`), one piece a step; the metric as it was after each
    count of ``steps``. The same seed gives the same weights."""
    from tqdm import tqdm

    if not pairs:
        raise ValueError("training needs at least one paired piece")
    if not steps or min(steps) < 1:
        raise ValueError(f"steps must be positive, got {list(steps)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    metric = FrameMetric(pairs[0][0].shape[1])
    optimiser = torch.optim.Adam(metric.parameters(), lr=lr)
    kept: dict[int, FrameMetric] = {}
    for step in tqdm(range(1, max(steps) + 1), desc="frame metric", unit="step", disable=not progress, leave=False):
        pair = pairs[int(rng.integers(len(pairs)))]
        loss = info_nce(metric, pair, _batch_times(pair[2], rng, BATCH), temperature)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step in steps:
            kept[step] = copy.deepcopy(metric).eval()
    return kept


def learned_distance(metric: FrameMetric, piece: dict, rendered: np.ndarray, times: np.ndarray) -> torch.Tensor:
    """(queries, keys): :func:`agents.lm.rendered.rendered_distance` with every frame embedded by ``metric``, each
    window on its own (what the agent has: nothing before its window)."""
    from agents.lm.mapping import _heard_windows, _read_windows, _sequence_distance
    from agents.lm.rendered import _places

    heard = [metric.heard(w) for w in _heard_windows(piece["audio"], times)]
    read = [metric.rendered(w) for w in _read_windows(rendered, _places(piece, times, rendered))]
    return _sequence_distance(heard, read)


def _moments(piece_ids: list[str], candidates: int, seed: int) -> list[tuple[dict, np.ndarray, np.ndarray, torch.Tensor]]:
    """Each piece's retrieval moments with its rendering and the standardised pair-free similarity."""
    from agents.lm.fusion import standardised
    from agents.lm.keyboard_fit import moments
    from agents.lm.rendered import rendered_distance, rendered_frames

    out = []
    for piece, times in moments(piece_ids, "harmonic", candidates, seed):
        rendered = rendered_frames(piece["id"])
        out.append((piece, rendered, times, standardised(-rendered_distance(piece, rendered, times))))
    return out


def mix_hits(metric: FrameMetric, at: list, shares: tuple[float, ...]) -> dict[float, np.ndarray]:
    """Per share, each piece's hits by ``(1 - share)`` of the learned similarity and ``share`` of the pair-free
    rendered one (both standardised)."""
    from agents.lm.fusion import mix_standardised, standardised
    from agents.lm.mapping import own_share

    hits = {share: np.zeros(len(at)) for share in shares}
    for i, (piece, rendered, times, by_rendered) in enumerate(at):
        by_metric = standardised(-learned_distance(metric, piece, rendered, times))
        for share in shares:
            hits[share][i] = own_share(mix_standardised(by_metric, by_rendered, share))
    return hits


def evaluate(paired_budgets: list[int], steps: tuple[int, ...] = STEPS, candidates: int = 16, seed: int = 0,
             progress: bool = True) -> dict:
    """Held-out retrieval by the pair-free rendered distance, and per K by the learned metric alone and mixed with
    it (the training length, then the share, chosen on the val pieces)."""
    from agents.lm.keyboard_fit import share_with_interval
    from agents.lm.mapping import held_out_ids, own_share, validation_ids
    from agents.lm.rendered import SHARES, _best
    from lmm_envs.music import corpus

    val = _moments(validation_ids(), candidates, seed)
    held_out = _moments(held_out_ids(), candidates, seed)
    n, n_val = (sum(len(times) for _, _, times, _ in at) for at in (held_out, val))
    alone = np.array([own_share(by_rendered) for *_, by_rendered in held_out])
    report = {"candidates": candidates, "seed": seed, "queries": n, "steps": list(steps),
              "rendered_alone": share_with_interval(alone, n, seed), "rows": []}
    for k in paired_budgets:
        kept = train_metric([aligned_pair(pid) for pid in corpus.paired_ids(k)], steps, seed, progress=progress)
        on_val = {s: mix_hits(m, val, SHARES) for s, m in kept.items()}
        chosen = _best({s: float(hits[0.0].sum()) for s, hits in on_val.items()})
        share = _best({s: float(h.sum()) for s, h in on_val[chosen].items()})
        hits = mix_hits(kept[chosen], held_out, (0.0, share))
        report["rows"].append({"paired_budget": k, "steps": chosen, "share": share,
                               "val_metric_alone": {str(s): float(h[0.0].sum() / n_val) for s, h in on_val.items()},
                               "metric_alone": share_with_interval(hits[0.0], n, seed),
                               "mixed": share_with_interval(hits[share], n, seed)})
    return report


def plot(report: dict, path: Path) -> None:
    """Held-out retrieval against K: the learned metric, the same mixed with the pair-free rendered distance."""
    from agents.lm.fusion import plot_against_k

    plot_against_k(report["rows"], (("mixed", "learned + pair-free rendered (share on val)", "tab:blue"),
                                    ("metric_alone", "frame metric learned on K pairs", "tab:orange")),
                   ((report["rendered_alone"]["share"], "rendered score, spectrum cosine (no pairs)", "-."),),
                   report["candidates"], path)


def main(argv: list[str] | None = None) -> int:
    from agents.lm.fusion import add_retrieval_options, check_retrieval_options, shown, write_report
    from lmm_envs.errors import LMMError

    ap = argparse.ArgumentParser(prog="python -m agents.lm.frame_metric", description=__doc__.split("\n\n")[0])
    add_retrieval_options(ap, "K: the pairs each metric learns from")
    ap.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="training lengths to choose from on val")
    args = ap.parse_args(argv)
    try:
        if any(s < 1 for s in args.steps):
            raise LMMError(f"--steps takes positive numbers of training steps, got {args.steps}")
        check_retrieval_options(args)
        report = evaluate(args.paired_budget, tuple(sorted(set(args.steps))), args.candidates, args.seed,
                          progress=not args.quiet)
    except LMMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_report(report, args.out, args.plot, plot)
    print(f"no pairs: rendered score {shown(report['rendered_alone'])} ({report['queries']} queries)")
    for row in report["rows"]:
        print(f"K={row['paired_budget']:<4} learned metric {shown(row['metric_alone'])} ({row['steps']} steps), "
              f"with the rendered score {shown(row['mixed'])} (share {row['share']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
