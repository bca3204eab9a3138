"""What makes a performance expressive, measured the same way on real and rendered performances.

:func:`expressive_statistics` takes a score, a performance of it and their alignment and returns:

- ``tempo_spread``: the standard deviation of the local log2 tempo (one value per beat, the tempo over that beat
  relative to the performance's median tempo): how far a performer strays from a steady beat;
- ``tempo_change``: the standard deviation of the beat-to-beat change of that log2 tempo: how abruptly;
- ``asynchrony_ms``: the standard deviation of the onsets of notes written together around their mean (ms),
  over chords of two or more notes;
- ``velocity_spread``: the standard deviation of MIDI velocities (dynamics).

Notes are grouped into chords by the score onset nearest to where the alignment puts them, which holds as long
as asynchronies are short against the time between onsets.
"""

from __future__ import annotations

import numpy as np

from lmm_envs.music.score import Alignment, Performance, Score

STATISTICS = ("tempo_spread", "tempo_change", "asynchrony_ms", "velocity_spread")


def local_log_tempo(score: Score, alignment: Alignment) -> np.ndarray:
    """log2 of the tempo over each whole beat relative to the median, from the first to the last aligned beat."""
    beats_aligned = score.tempo.seconds_to_beats(alignment.score_time)
    first, last = np.ceil(beats_aligned[0]), np.floor(beats_aligned[-1])
    grid = np.arange(first, last + 1.0)
    if grid.size < 3:
        return np.zeros(0)
    times = np.interp(grid, beats_aligned, alignment.performance_time)
    duration = np.diff(times)
    ok = duration > 1e-6
    tempo = np.log2(1.0 / duration[ok])
    return tempo - np.median(tempo)


def chord_asynchrony(score: Score, performance: Performance, alignment: Alignment) -> np.ndarray:
    """Each played note's onset minus the mean onset of the notes of its chord (seconds), for chords of 2+."""
    onsets_s = score.tempo.beats_to_seconds(score.unique_onsets())
    where = alignment.score_at(performance.onset)
    k = np.clip(np.searchsorted(onsets_s, where), 1, onsets_s.size - 1)
    nearest = np.where(np.abs(onsets_s[k - 1] - where) <= np.abs(onsets_s[k] - where), k - 1, k)
    out = []
    for chord in np.unique(nearest):
        played = performance.onset[nearest == chord]
        if played.size >= 2:
            out.append(played - played.mean())
    return np.concatenate(out) if out else np.zeros(0)


def expressive_statistics(score: Score, performance: Performance, alignment: Alignment) -> dict[str, float]:
    """The statistics of the module docstring for one performance."""
    tempo = local_log_tempo(score, alignment)
    asynchrony = chord_asynchrony(score, performance, alignment)
    return {
        "tempo_spread": float(np.std(tempo)) if tempo.size else float("nan"),
        "tempo_change": float(np.std(np.diff(tempo))) if tempo.size > 1 else float("nan"),
        "asynchrony_ms": float(1000.0 * np.std(asynchrony)) if asynchrony.size else float("nan"),
        "velocity_spread": float(np.std(performance.velocity.astype(np.float64))),
    }


def compare_styles(folder, styles: tuple[str, ...] = ("vienna", "gentle"), renderings: int = 4,
                   progress: bool = True) -> dict:
    """Statistics of the real performances in a dataset folder against renderings of their scores in each style.

    Returns ``{"real": [...], style: [...], "pieces": {score title: [(label, beats, log2 tempo), ...]}}``: one
    statistics dict per performance, and the local tempo curves used by :func:`plot_tempo_curves`.
    """
    from tqdm import tqdm

    from lmm_envs.music.expressive import render_performance
    from lmm_envs.pieces import load_piece, load_piece_list

    rows = load_piece_list(folder)
    out: dict = {"real": [], "pieces": {}, **{s: [] for s in styles}}
    scores = {}
    for row in tqdm(rows, desc="real performances", disable=not progress):
        piece = load_piece(row["score"], row["performance"], row["alignment"], synth="harmonic")
        if piece.performance is None:
            continue
        out["real"].append(expressive_statistics(piece.score, piece.performance, piece.alignment))
        title = piece.score.title
        scores.setdefault(title, piece.score)
        out["pieces"].setdefault(title, []).append(("real", *_curve(piece.score, piece.alignment)))
    for style in styles:
        for title, score in scores.items():
            for k in range(renderings):
                perf, align = render_performance(score, 1.0, seed=k, style=style)
                out[style].append(expressive_statistics(score, perf, align))
                out["pieces"][title].append((style, *_curve(score, align)))
    return out


def _curve(score: Score, alignment: Alignment) -> tuple[np.ndarray, np.ndarray]:
    beats = score.tempo.seconds_to_beats(alignment.score_time)
    grid = np.arange(np.ceil(beats[0]), np.floor(beats[-1]) + 1.0)
    return grid[:-1], local_log_tempo(score, alignment)


def summary_table(comparison: dict) -> str:
    """A Markdown table of the median of each statistic: real performances against each style."""
    groups = [k for k in comparison if k != "pieces"]
    lines = ["| statistic | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    for stat in STATISTICS:
        cells = [f"{np.nanmedian([r[stat] for r in comparison[g]]):.3g}" for g in groups]
        lines.append(f"| {stat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_tempo_curves(comparison: dict, path, piece: str | None = None, per_group: int = 4) -> None:
    """Local tempo (log2, relative to the median) against score beats: real performances and renderings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = piece or next(iter(comparison["pieces"]))
    curves = comparison["pieces"][title]
    groups = list(dict.fromkeys(label for label, _, _ in curves))
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 2.2 * len(groups)), sharex=True, sharey=True)
    for ax, group in zip(np.atleast_1d(axes), groups, strict=True):
        for _, beats, tempo in [c for c in curves if c[0] == group][:per_group]:
            n = min(beats.size, tempo.size)
            ax.plot(beats[:n], tempo[:n], lw=0.9)
        ax.axhline(0.0, color="0.6", lw=0.5)
        ax.set_ylabel("log2 tempo")
        ax.set_title(f"{group}: {title}" if group == "real" else f"rendered, style {group!r}", fontsize=9)
    np.atleast_1d(axes)[-1].set_xlabel("score beat (quarter notes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m lmm_envs.music.expressive_stats FOLDER [--plot PNG] [--piece TITLE]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Expressive statistics of real performances against renderings.")
    parser.add_argument("folder", help="a dataset folder of real performances (e.g. match files and MusicXML)")
    parser.add_argument("--plot", help="write the tempo-curve figure here (PNG)")
    parser.add_argument("--piece", help="the score title to plot (default: the first)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from lmm_envs.cli import _one_line_warnings
    from lmm_envs.errors import LMMError

    _one_line_warnings()
    try:
        comparison = compare_styles(args.folder, progress=not args.quiet)
        print(summary_table(comparison))
        if args.plot:
            plot_tempo_curves(comparison, args.plot, args.piece)
            print(f"wrote {args.plot}")
    except LMMError as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
