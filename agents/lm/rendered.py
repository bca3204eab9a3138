"""The score played through the envs' synth, M -> A, and a K-pair map between LM^A's two hearings of it.

A score needs no pair to be heard: rendered deadpan (expressiveness 0: the nominal tempo, even dynamics) through the
synth the envs use, its audio frame ``c`` is score frame ``c`` (both 20 frames a second). An audio moment of a
performance can then be placed against a score moment two ways, neither through LM^V:

- **the rendered score, frame by frame** (:func:`rendered_distance`): the heard window against the rendered frames
  up to the place, by :func:`agents.lm.mapping.end_aligned_distance` (the performer's tempo drops out). Like the
  score through h's piano (:func:`agents.lm.mapping.piano_distance`), it needs no pairs; it hears each note's attack
  and decay where h's keyboard holds a key's mean spectrum.
- **LM^A on both** (:class:`RenderedMap`): LM^A's pooled state after the heard window, against its state after the
  rendered window ending at the place. LM^A was trained on unpaired performances; a performance and a deadpan
  rendering of the same moment differ in tempo, dynamics and what the performer's timing blurs, so the K pairs fit
  a map from the first state onto the second (ridge regression, the ridge chosen on the val pieces). With no map
  (the identity) it uses no pairs at all.

The two are mixed as :mod:`agents.lm.fusion` mixes its bridges, ``(1 - share) * map + share * rendered``, each
standardised per query, the share chosen on the val pieces. Held-out retrieval among 16 moments (the task of
:func:`agents.lm.mapping.retrieval_accuracy`: the same pieces and moments for the same seed), each with a 95%
bootstrap interval over the held-out pieces:

    python -m agents.lm.rendered --lm-dir leaderboard/lms/base --paired-budget 8 64 208 \\
        --out runs/rendered.json --plot docs/retrieval_rendered.png
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

RIDGES = (1e-5, 1e-4, 1e-3, 1e-2)  # per pair moment, against the states' own scale; chosen on val
SHARES = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())  # the rendered distance's share in the mix
PER_PIECE = 200  # moments drawn from each paired piece to fit the map (as agents.lm.mapping.fit_mapping)


def rendered_frames(piece_id: str, synth: str = "harmonic") -> np.ndarray:
    """``(frames, 75)`` the piece's score rendered deadpan by ``synth``, quantised as the env's audio, in [0, 1]:
    frame ``c`` sounds score frame ``c``."""
    from agents.lm.data import _audio
    from lmm_envs.pieces import prepare_piece

    return _audio(prepare_piece(piece_id, 0.0, 0, synth=synth))


def _places(piece: dict, times: np.ndarray, rendered: np.ndarray) -> list[int]:
    """The score frames the alignment gives ``times``, inside the rendering."""
    return [min(int(piece["position"][t]), len(rendered) - 1) for t in times]


def rendered_distance(piece: dict, rendered: np.ndarray, times: np.ndarray) -> torch.Tensor:
    """(queries, keys): the heard window ending at each time against the rendered score up to each moment's place
    (the score window's frames up to the agent's place, as :func:`agents.lm.mapping.piano_distance` reads it),
    by :func:`agents.lm.mapping.end_aligned_distance` over frames. Uses no pairs and nothing learned."""
    from agents.lm.mapping import _heard_windows, _read_windows, _sequence_distance

    return _sequence_distance(_heard_windows(piece["audio"], times), _read_windows(rendered, _places(piece, times,
                                                                                                        rendered)))


@torch.no_grad()
def hearings(lm_a, piece: dict, rendered: np.ndarray, times: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """LM^A's pooled states ``(queries, d)`` after the heard window ending at each time, and after the rendered
    window ending at each moment's place (the pooling and block of the contrastive LM mappings)."""
    from agents.lm.data import AUDIO_CONTEXT, window_ending_at
    from agents.lm.mapping import AUDIO_LAYER, POOL_AUDIO, audio_states

    heard = np.stack([window_ending_at(piece["audio"], int(t), AUDIO_CONTEXT) for t in times])
    played = np.stack([window_ending_at(rendered, c, AUDIO_CONTEXT) for c in _places(piece, times, rendered)])
    return (audio_states(lm_a, heard, pool=POOL_AUDIO, layer=AUDIO_LAYER),
            audio_states(lm_a, played, pool=POOL_AUDIO, layer=AUDIO_LAYER))


@dataclass
class RenderedMap:
    """``heard @ weight + bias`` estimates LM^A's state of the rendered score at the same place; ``center`` (the
    rendered states' mean over the pairs) is removed before cosines. ``paired_budget`` 0 is the identity."""

    weight: torch.Tensor
    bias: torch.Tensor
    center: torch.Tensor
    paired_budget: int
    ridge: float | None = None

    @classmethod
    def identity(cls, d: int) -> RenderedMap:
        return cls(torch.eye(d, dtype=torch.float32), torch.zeros(d), torch.zeros(d), 0)

    @classmethod
    def fit(cls, heard: torch.Tensor, played: torch.Tensor, ridge: float, paired_budget: int) -> RenderedMap:
        """Ridge regression of ``played`` on ``heard`` (rows: the same moments), ``ridge`` per moment."""
        from agents.lm.mapping import affine_ridge

        if ridge <= 0:
            raise ValueError(f"ridge must be positive, got {ridge}")
        weight, bias = affine_ridge(heard.double(), played.double(), ridge)
        return cls(weight.float(), bias.float(), played.mean(0), paired_budget, ridge)

    def similarity(self, heard: torch.Tensor, played: torch.Tensor) -> torch.Tensor:
        """(queries, keys) cosine of the mapped heard states with the rendered ones, both less ``center``."""
        from agents.lm.mapping import _cosine

        return _cosine(heard @ self.weight + self.bias - self.center, played - self.center)


@torch.no_grad()
def pair_hearings(lm_a, paired_budget: int, per_piece: int = PER_PIECE, seed: int = 0,
                  synth: str = "harmonic") -> tuple[torch.Tensor, torch.Tensor]:
    """LM^A's two hearings (:func:`hearings`) at ``per_piece`` random moments of each of the K paired pieces."""
    from agents.lm.data import load_paired
    from lmm_envs.music import corpus

    rng = np.random.default_rng(seed)
    heard, played = [], []
    for pid in corpus.paired_ids(paired_budget):
        piece = load_paired(pid)
        a, b = hearings(lm_a, piece, rendered_frames(pid, synth), rng.integers(0, len(piece["audio"]), size=per_piece))
        heard.append(a)
        played.append(b)
    return torch.cat(heard), torch.cat(played)


def ideal_hits(piece: dict, rendered: np.ndarray, times: np.ndarray) -> float:
    """The hits of an ideal reading, one that knows each moment's true place: it finds its own key unless another
    candidate's rendered window is the same (a repeated passage), and then ties with it. The ceiling of any
    comparison with the rendered score on these moments."""
    from agents.lm.mapping import _read_windows, own_share

    windows = _read_windows(rendered, _places(piece, times, rendered))
    same = [[len(a) == len(b) and np.allclose(a, b, atol=1e-6) for b in windows] for a in windows]
    return own_share(torch.tensor(same, dtype=torch.float64))


@dataclass
class _Moments:
    """One set of pieces' retrieval moments with what every comparison needs of them, computed once."""

    heard: list[torch.Tensor]
    played: list[torch.Tensor]
    by_rendered: list[torch.Tensor]  # standardised -rendered_distance
    queries: int
    ideal: np.ndarray  # per piece, :func:`ideal_hits`


def _heard_moments(lm_a, piece_ids: list[str], candidates: int, seed: int, progress: bool) -> _Moments:
    from tqdm import tqdm

    from agents.lm.fusion import standardised
    from agents.lm.keyboard_fit import moments

    heard, played, by_rendered, queries, ideal = [], [], [], 0, []
    for piece, times in tqdm(moments(piece_ids, "harmonic", candidates, seed), desc="moments", unit="piece",
                             disable=not progress, leave=False):
        rendered = rendered_frames(piece["id"])
        a, b = hearings(lm_a, piece, rendered, times)
        heard.append(a)
        played.append(b)
        by_rendered.append(standardised(-rendered_distance(piece, rendered, times)))
        queries += len(times)
        ideal.append(ideal_hits(piece, rendered, times))
    return _Moments(heard, played, by_rendered, queries, np.array(ideal))


def mix_hits(mapping: RenderedMap, at: _Moments, shares: tuple[float, ...] = SHARES) -> dict[float, np.ndarray]:
    """Per share, each piece's retrieval hits by ``(1 - share)`` of the map's similarity and ``share`` of the
    rendered score's (both standardised): share 0 is the map alone, 1 the rendered distance alone."""
    from agents.lm.fusion import mix_standardised, standardised
    from agents.lm.mapping import own_share

    hits = {share: np.zeros(len(at.heard)) for share in shares}
    for i, (heard, played, by_rendered) in enumerate(zip(at.heard, at.played, at.by_rendered, strict=True)):
        by_map = standardised(mapping.similarity(heard, played))
        for share in shares:
            hits[share][i] = own_share(mix_standardised(by_map, by_rendered, share))
    return hits


def _best(scores: dict[float, float]) -> float:
    """The key of the highest score; among equals the smallest."""
    return min(scores, key=lambda k: (-scores[k], k))


def evaluate(lm_dir: Path, paired_budgets: list[int], candidates: int = 16, seed: int = 0,
             ridges: tuple[float, ...] = RIDGES, per_piece: int = PER_PIECE, progress: bool = True) -> dict:
    """Held-out retrieval by LM^A with no map, by the rendered score alone, and per K by the K-pair map alone and
    mixed with the rendered score (the ridge, then the share, chosen on the val pieces)."""
    from agents.lm.keyboard_fit import share_with_interval
    from agents.lm.mapping import held_out_ids, validation_ids
    from agents.lm.model import FrameLM
    from lmm_envs.errors import ConfigError

    path = lm_dir / "lm_a.pt"
    if not path.is_file():
        raise ConfigError(f"{path} not found (LM^A comes from python -m agents.pretrain)")
    if not ridges or any(r <= 0 for r in ridges):
        raise ConfigError(f"--ridges takes one or more positive values, got {list(ridges)}")
    lm_a = FrameLM.load(path)
    val = _heard_moments(lm_a, validation_ids(), candidates, seed, progress)
    held_out = _heard_moments(lm_a, held_out_ids(), candidates, seed, progress)
    n = held_out.queries
    identity = RenderedMap.identity(held_out.heard[0].shape[1])
    alone = mix_hits(identity, held_out, (0.0, 1.0))
    report = {"lm_dir": str(lm_dir), "candidates": candidates, "seed": seed, "queries": n, "per_piece": per_piece,
              "no_map": share_with_interval(alone[0.0], n, seed),
              "rendered_alone": share_with_interval(alone[1.0], n, seed),
              "ideal_reading": share_with_interval(held_out.ideal, n, seed), "rows": []}
    for k in paired_budgets:
        heard, played = pair_hearings(lm_a, k, per_piece, seed)
        fitted = {r: RenderedMap.fit(heard, played, r, k) for r in ridges}
        ridge = _best({r: float(mix_hits(m, val, (0.0,))[0.0].sum()) for r, m in fitted.items()})
        mapping = fitted[ridge]
        share = _best({s: float(h.sum()) for s, h in mix_hits(mapping, val).items()})
        hits = mix_hits(mapping, held_out, (0.0, share))
        report["rows"].append({"paired_budget": k, "ridge": ridge, "share": share,
                               "map_alone": share_with_interval(hits[0.0], n, seed),
                               "mixed": share_with_interval(hits[share], n, seed)})
    return report


def plot(report: dict, path: Path) -> None:
    """Held-out retrieval against K: the K-pair map, the rendered score and the two mixed, with their intervals."""
    from agents.lm.fusion import plot_against_k

    plot_against_k(report["rows"], (("mixed", "K-pair map + rendered score (share on val)", "tab:blue"),
                                    ("map_alone", "LM^A: heard -> rendered, K-pair map", "tab:green")),
                   ((report["rendered_alone"]["share"], "rendered score, frame by frame (no pairs)", "-."),
                    (report["no_map"]["share"], "LM^A: heard against rendered, no map (no pairs)", ":"),
                    (report["ideal_reading"]["share"], "an ideal reading of the true places (the ceiling)", "--")),
                   report["candidates"], path)


def main(argv: list[str] | None = None) -> int:
    from agents.lm.fusion import add_retrieval_options, check_retrieval_options, shown, write_report
    from lmm_envs.errors import LMMError

    ap = argparse.ArgumentParser(prog="python -m agents.lm.rendered", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm-dir", type=Path, default=Path("leaderboard/lms/base"), help="LM^A (agents.pretrain)")
    add_retrieval_options(ap, "K: the pairs each map fits")
    ap.add_argument("--ridges", type=float, nargs="+", default=list(RIDGES), help="to choose from on val")
    args = ap.parse_args(argv)
    try:
        check_retrieval_options(args)
        report = evaluate(args.lm_dir, args.paired_budget, args.candidates, args.seed, tuple(args.ridges),
                          progress=not args.quiet)
    except LMMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_report(report, args.out, args.plot, plot)
    print(f"no pairs: LM^A with no map {shown(report['no_map'])}, rendered score {shown(report['rendered_alone'])} "
          f"({report['queries']} queries; an ideal reading of the true places {shown(report['ideal_reading'])})")
    for row in report["rows"]:
        print(f"K={row['paired_budget']:<4} map {shown(row['map_alone'])} (ridge {row['ridge']:g}), with the rendered "
              f"score {shown(row['mixed'])} (share {row['share']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
