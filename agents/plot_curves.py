"""Learning curves from training runs: the normalised score on val pieces against env steps, one line per setting.

    python -m agents.plot_curves runs/sf_dagger_s0 runs/sf_dagger_s1 runs/sf_ppo_s0 --out learning_curves.png

Each run folder's ``run.json`` must hold a validation curve (``python -m agents.train --eval-every N``). Runs of the
same setting (env, features, warm start, paired budget) are one line: the mean over seeds, with their range shaded.

``--from-checkpoints EVERY`` draws the curve after the fact from a run's kept checkpoints instead (the first, the
first past every EVERY RL steps, and the last, each scored on val pieces as during training; see
:func:`agents.validation.checkpoint_curve`): for runs made without ``--eval-every``, or still training. Scores are
kept beside the checkpoints, so drawing again evaluates only new checkpoints. ``--workers N`` scores N runs at a
time, one process each (the same points as one after the other).

    python -m agents.plot_curves runs/sf_8_1M_lmm/lmm_s* --from-checkpoints 100000 --workers 2 --out curves_1M.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lmm_envs.errors import ConfigError, LMMError


def setting(run: dict) -> str:
    """A run's line label: what distinguishes settings, not seeds."""
    warm = run.get("warm_start")
    start = f"{warm['method']} + {run['algo']}" if warm else run["algo"]
    return f"{start}, {run['features']} features, K={run['paired_budget'] or 'all'}"


def _read_run(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read a run ({e})") from None


def load_curves(folders: list[Path]) -> dict[str, list[np.ndarray]]:
    curves: dict[str, list[np.ndarray]] = {}
    for folder in folders:
        path = Path(folder) / "run.json"
        run = _read_run(path)
        points = (run.get("validation") or {}).get("curve")
        if not points:
            raise ConfigError(f"{path} has no validation curve; train with --eval-every N")
        curves.setdefault(setting(run), []).append(np.array(points, dtype=float))
    return curves


def _score_checkpoints(task: tuple[str, str, int, int]) -> list[tuple[int, float]]:
    """One run's checkpoint curve (a task for :func:`lmm_envs.parallel.run_tasks`), logging each point."""
    from agents.validation import checkpoint_curve

    folder, env_id, every, pieces = task
    return checkpoint_curve(Path(folder), env_id, every, pieces,
                            log=lambda line: print(line, file=sys.stderr, flush=True))


def load_checkpoint_curves(folders: list[Path], every: int, env_id: str, pieces: int,
                           workers: int = 1) -> dict[str, list[np.ndarray]]:
    """:func:`load_curves` from the runs' checkpoints (:func:`agents.validation.checkpoint_curve`), ``workers``
    runs at a time; a run still training (no ``run.json`` yet) is labelled by its experiment folder and arm."""
    import re

    from lmm_envs.parallel import run_tasks

    labels, tasks = [], []
    for folder in folders:
        path = Path(folder) / "run.json"
        if path.is_file():
            run = _read_run(path)
            label, env = setting(run), run["env_id"]
        else:
            label, env = f"{Path(folder).resolve().parent.name}: {re.sub(r'_s[0-9]+$', '', Path(folder).name)}", env_id
        labels.append(label)
        tasks.append((str(folder), env, every, pieces))
    curves: dict[str, list[np.ndarray]] = {}
    for label, points in zip(labels, run_tasks(_score_checkpoints, tasks, workers=workers), strict=True):
        curves.setdefault(label, []).append(np.array(points, dtype=float))
    return curves


def plot(curves: dict[str, list[np.ndarray]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmm_envs.files import atomic_path, check_output_file

    check_output_file(out)
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, runs in sorted(curves.items()):
        steps = np.unique(np.concatenate([r[:, 0] for r in runs]))
        values = np.array([np.interp(steps, r[:, 0], r[:, 1]) for r in runs])
        ax.plot(steps, values.mean(axis=0), marker="o", markersize=3, label=f"{label} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("env steps (warm start included)")
    ax.set_ylabel("normalised score on val pieces")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.plot_curves", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders (each with a run.json)")
    ap.add_argument("--out", default="learning_curves.png")
    ap.add_argument("--title", default="learning curves")
    ap.add_argument("--from-checkpoints", type=int, metavar="EVERY",
                    help="score the runs' kept checkpoints on val pieces, one point per EVERY RL steps")
    ap.add_argument("--env", default="lmm/ScoreFollowing-v0",
                    help="with --from-checkpoints: the env of runs without a run.json yet")
    ap.add_argument("--pieces", type=int, default=8, help="with --from-checkpoints: the val pieces to score on")
    ap.add_argument("--workers", type=int, default=1,
                    help="with --from-checkpoints: runs scored at a time, one process each")
    args = ap.parse_args(argv)
    try:
        if args.workers < 1:
            raise ConfigError(f"--workers needs at least 1 process, got {args.workers}")
        folders = [Path(r) for r in args.runs]
        curves = (load_curves(folders) if args.from_checkpoints is None
                  else load_checkpoint_curves(folders, args.from_checkpoints, args.env, args.pieces, args.workers))
        path = plot(curves, Path(args.out), args.title)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
