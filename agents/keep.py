"""Keep a trained model for the leaderboard, small.

``python -m agents.keep RUN_DIR --out leaderboard/checkpoints/NAME.zip [--at RL_STEPS | --best-on-val]``

writes ``NAME.zip``, the run's final model (or, with ``--at``, its checkpoint after that many RL steps; with
``--best-on-val``, the checkpoint that scored best on the val pieces), and ``NAME.run.json``, the run's settings
with the steps and track of what was kept. ``--best-on-val`` reads the scores that
``python -m agents.plot_curves RUN_DIR --from-checkpoints EVERY`` keeps beside the checkpoints
(:data:`agents.validation.CHECKPOINT_CURVE`): the choice looks at val pieces only, never at the test split, and
the kept model keeps the whole run's steps and track (choosing needed every checkpoint up to the run's end).

The kept ``.zip`` holds the policy exactly as trained but not the optimiser's running moments: SB3 saves Adam's
two moments beside every weight, two thirds of a file that evaluation never reads (a `raw` follower: 31 MB -> 10
MB). Every action the kept model takes is the one the run's model takes; training on from it starts Adam afresh.
``lmm-envs evaluate --agent NAME.zip`` then scores it as any checkpoint.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

from lmm_envs.errors import ConfigError, LMMError

OPTIMIZER_ENTRY = "policy.optimizer.pth"


def without_optimizer_state(source: Path, target: Path) -> None:
    """Copy the SB3 ``.zip`` at ``source`` to ``target`` with the optimiser's per-weight state emptied (its
    settings, the learning rate and betas, kept), so that SB3 still loads it with ``exact_match``."""
    import torch

    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            payload = zin.read(item)
            if item.filename == OPTIMIZER_ENTRY:
                state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
                state["state"] = {}
                buffer = io.BytesIO()
                torch.save(state, buffer)
                payload = buffer.getvalue()
            zout.writestr(item, payload)


def kept_settings(run: dict, rl_steps: int | None, checkpoint: str) -> dict:
    """The run's settings for the model taken after ``rl_steps`` RL steps (None: the final model): its steps
    (the warm start's env steps count) and the track they fall in."""
    from agents.train import track_of

    kept = dict(run, checkpoint_of=checkpoint)
    if rl_steps is not None:
        warm = (run.get("warm_start") or {}).get("env_steps", 0)
        kept.update(rl_steps=rl_steps, steps=warm + rl_steps, track=track_of(run["paired_budget"], warm + rl_steps))
    return kept


def best_on_val(run_dir: Path) -> tuple[int, dict]:
    """The RL steps of the run's checkpoint with the highest normalised score on val pieces (among equals, the
    earliest), from the scores kept in ``run_dir``'s :data:`agents.validation.CHECKPOINT_CURVE`, and what the choice
    rests on (the val pieces, the chosen score, how many checkpoints were scored)."""
    import math

    from agents.train import checkpoint_steps
    from agents.validation import CHECKPOINT_CURVE

    path = run_dir / CHECKPOINT_CURVE
    if not path.is_file():
        raise ConfigError(f"{path} not found: score the run's checkpoints on val pieces first "
                          f"(python -m agents.plot_curves {run_dir} --from-checkpoints 100000)")
    kept = json.loads(path.read_text())
    scored = []
    for name, (env_steps, score) in kept["points"].items():
        count = checkpoint_steps(name)
        if count is not None and score is not None and math.isfinite(score):
            scored.append((count, int(env_steps), float(score)))
    if not scored:
        raise ConfigError(f"{path} holds no checkpoint with a finite val score; score it again with "
                          "python -m agents.plot_curves --from-checkpoints")
    rl_steps, env_steps, score = min(scored, key=lambda s: (-s[2], s[0]))
    return rl_steps, {"split": kept.get("split", "val"), "pieces": kept["pieces"], "normalised_score": score,
                      "env_steps": env_steps, "checkpoints_scored": len(scored)}


def keep(run_dir: str | Path, out: str | Path, at: int | None = None, best: bool = False) -> dict:
    """Write the kept model and its settings (see the module docstring); returns the settings written. ``best``:
    keep the checkpoint that scored best on val pieces (:func:`best_on_val`), recorded as ``chosen_on_val``; its
    steps and track stay the run's, since the choice needed every checkpoint up to the run's end."""
    from agents.train import checkpoints
    from lmm_envs.files import atomic_path, check_output_file

    run_dir, out = Path(run_dir), Path(out)
    if best and at is not None:
        raise ConfigError("--at and --best-on-val each choose the checkpoint to keep: give one of them")
    if out.suffix != ".zip":
        raise ConfigError(f"--out {out} must end in .zip (the kept model; its settings go beside it as .run.json)")
    settings_path = run_dir / "run.json"
    if not settings_path.is_file():
        raise ConfigError(f"{run_dir} has no run.json: keep a run that has finished (python -m agents.train writes "
                          "run.json at its end; a cut-off run finishes with --resume)")
    run = json.loads(settings_path.read_text())
    chosen = None
    if best:
        at, chosen = best_on_val(run_dir)
    if at is None:
        source, name = run_dir / "model.zip", "model.zip"
        if not source.is_file():
            raise ConfigError(f"{source} not found: the run has no final model")
    else:
        found = dict(checkpoints(run_dir))
        if at not in found:
            listed = ", ".join(str(n) for n in sorted(found)) or "none"
            raise ConfigError(f"{run_dir} has no checkpoint after {at} RL steps; it has: {listed}")
        source, name = found[at], f"checkpoints/{found[at].name}"
    check_output_file(out)
    settings_out = check_output_file(out.with_suffix(".run.json"))
    if chosen is None:
        settings = kept_settings(run, at, name)
    else:  # the choice looked at every checkpoint up to the run's end: the agent took the whole run's steps
        settings = dict(kept_settings(run, None, name), chosen_on_val={**chosen, "rl_steps": at})
    with atomic_path(out) as tmp:
        without_optimizer_state(source, tmp)
    with atomic_path(settings_out) as tmp:
        tmp.write_text(json.dumps(settings, indent=1))
    return settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.keep", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a finished run folder (python -m agents.train --out)")
    ap.add_argument("--out", required=True, help="where the kept model goes (NAME.zip; NAME.run.json beside it)")
    ap.add_argument("--at", type=int, help="keep the checkpoint after this many RL steps instead of the final model")
    ap.add_argument("--best-on-val", action="store_true",
                    help="keep the checkpoint that scored best on val pieces (scored first by python -m "
                         "agents.plot_curves RUN_DIR --from-checkpoints EVERY)")
    args = ap.parse_args(argv)
    try:
        settings = keep(args.run_dir, args.out, args.at, args.best_on_val)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = Path(args.out).stat().st_size / 1e6
    chosen = settings.get("chosen_on_val")
    why = (f", the best of {chosen['checkpoints_scored']} checkpoints on {len(chosen['pieces'])} val pieces "
           f"({chosen['normalised_score']:.3f})" if chosen else "")
    print(f"kept {settings['checkpoint_of']} of {args.run_dir} as {args.out} ({size:.1f} MB), track "
          f"{settings['track']} ({settings['steps']} env steps){why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
