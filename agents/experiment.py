"""The experiment of the LMM challenge on one env: raw against LM-conditioned agents, several seeds, one command.

    python -m agents.experiment --env lmm/ScoreFollowing-v0 --paired-budget 8 --steps 100000 --seeds 0 1 2 \\
        --features raw lmm [--reward env lm score] --lm-dir runs/lm --out runs/experiment [--limit 0] [--parallel 2] \\
        [--warm-start dagger --teacher oracle] [--n-envs 16] [--ray [ADDRESS]] [--resume]

Trains every (features, reward, seed) with :func:`agents.train.train`, evaluates each model under the env's
protocol (``--limit N``: only N protocol pieces, spread over the list or the first N with ``--subset first``,
for a quicker, off-leaderboard measurement), writes
the result files to ``out/results`` and prints, per arm (features, and the reward when more than the env's is
asked), the mean over seeds of the normalised score and the main metric with a 95% t-interval across seeds.
Each run says on stderr, one named and timed line at a time, when a warm-start round ends, every 25k RL steps
and its score. ``--resume`` carries on an experiment that was cut off (a session's time limit): finished runs are
read from their result files, the others continue from their latest checkpoint, or inside a warm start after its
last finished round (:func:`agents.train.train`'s ``resume``).
``--ray`` runs each (features, reward, seed) as a Ray task instead of a local process (one CPU each, and
``--gpus-per-run`` of a GPU where the cluster has GPUs): the result files come back to this machine; the run
folders (models, logs) are written under ``--out`` on the node that ran them, so give a path every node shares.

``--best-on-val EVERY`` scores each run's checkpoints on ``--val-pieces`` val pieces
(:func:`agents.validation.checkpoint_curve`) and evaluates the best of them (:func:`agents.keep.keep`, kept as
``best_on_val.zip`` in the run) instead of the last; the arm is named ``<features>-best-on-val``, and a finished run
is scored without training again (``--resume``).

``--leaderboard DIR`` puts each trained model on the leaderboard in the same command: the model is kept small
(:func:`agents.keep.keep`) as ``DIR/checkpoints/<env>__<recipe>_<arm>_s<seed>__<track>.zip``, and that kept file,
not the run's, is what is evaluated under the full protocol, its result also written as
``DIR/results/<the same name>.json`` (then ``lmm-envs leaderboard DIR/results``). ``--resume`` on a run that has
finished training (its ``run.json`` says so) evaluates it without training again.

``--reward env lm score lm-score`` on lmm/SightReading-v0 is the closed-loop comparison: the env's own audio reward
against LM^A's likelihood of what the agent plays (:class:`agents.lm.reward.LMRewardWrapper`), h's hearing of it
against the score (:class:`agents.lm.reward.ScoreRewardWrapper`, ``--h-model``) and its sound mapped through LM^A
and the K-pair ``--mapping`` against LM^V's reading of the score (:class:`agents.lm.reward.MappedScoreRewardWrapper`,
``--lm-dir``; ``lm-margin`` and ``lm-contrast`` weigh that reading against the score moved and transposed),
scored on note F1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from agents.lm import MAPPING_METHODS, REWARDS
from agents.train import add_train_pieces_option
from lmm_envs.benchmark.protocol import SUBSETS
from lmm_envs.errors import ConfigError, LMMError
from lmm_envs.music.expressive import EXPRESSIVE_STYLES
from lmm_envs.parallel import add_ray_option

CHECKPOINT_EVERY = 25_000  # RL steps between a run's checkpoints (closer with a smaller --best-on-val)
BEST_ON_VAL = "best_on_val.zip"  # in a run's folder: the checkpoint --best-on-val chose, when no --leaderboard


def _one(job: dict) -> dict:
    """Train and evaluate one (features, reward, seed) in any process; returns its summary row and result."""
    import torch

    torch.set_num_threads(1)
    from agents.train import track_of
    from lmm_envs.benchmark.evaluate import evaluate

    arm = job["arm"]
    run = Path(job["out"]) / job.get("run_name", f"{arm}_s{job['seed']}")

    def say(line: str) -> None:  # one line at a time from each of the runs at once, named and timed
        print(f"{time.strftime('%H:%M:%S')} {arm} seed {job['seed']}: {line}", file=sys.stderr, flush=True)

    device = "cuda" if job.get("use_gpu") and torch.cuda.is_available() else "cpu"  # a GPU Ray gave this task
    if job.get("resume") and trained_already(run, job):
        say(f"trained already ({run / 'run.json'})")
    else:
        _train(job, run, device, say)
    name = f"{job['warm_start']}+ppo" if job["warm_start"] else "ppo"
    subset = job["subset"]
    model = run / "model.zip"
    best = bool(job.get("best_on_val"))
    if best:  # each checkpoint scored on val pieces (kept in the run, so a resumed one scores only the new ones)
        from agents.validation import checkpoint_curve

        say(f"scoring its checkpoints on {job['val_pieces']} val pieces")
        checkpoint_curve(run, job["env"], job["best_on_val"], job["val_pieces"], log=say)
    if job.get("leaderboard") or best:  # the kept file is what the leaderboard replays, so it is what gets scored
        from agents.keep import keep

        if job.get("leaderboard"):
            model = Path(job["leaderboard"]) / "checkpoints" / leaderboard_name(job, ".zip")
            model.parent.mkdir(parents=True, exist_ok=True)
        else:
            model = run / BEST_ON_VAL
        kept = keep(run, model, best=best)
        chosen = kept.get("chosen_on_val")
        say(f"kept as {model}" + (f" (best on val: {chosen['rl_steps']} RL steps, {chosen['normalised_score']:.3f})"
                                  if chosen else ""))
    say(f"evaluating {model}" + (f" on {job['limit']} protocol pieces ({subset})" if job["limit"] else ""))
    result = evaluate(job["env"], str(model), agent_name=f"{name}-{arm} seed {job['seed']}",
                      track=track_of(job["paired_budget"], job["steps"]), limit=job["limit"] or None, trust=True,
                      progress=False, subset=subset)
    row = _row(arm, job["seed"], result)
    say(f"normalised score {row['score']:.3f}, {row['metric']} {row['main']:.3f}")
    return {**row, "result": result}


def _train(job: dict, run: Path, device: str, say) -> None:
    from agents.train import train

    train(job["env"], "ppo", job["features"], job["paired_budget"], job["steps"], job["seed"], device, run,
          lm_dir=job["lm_dir"], mapping=job["mapping"], progress=False, reward=job["reward"],
          n_envs=job["n_envs"], warm_start=job["warm_start"], warm_start_steps=job["warm_start_steps"], teacher=job["teacher"],
          train_style=job.get("train_style"), warm_start_style=job.get("warm_start_style"), h_model=job.get("h_model"),
          resume=job.get("resume", False), features_args=job.get("features_args"), log=say,
          hyperparameters=job.get("hyperparameters"), train_pieces=job.get("train_pieces", "paired"),
          checkpoint_every=min(CHECKPOINT_EVERY, job.get("best_on_val") or CHECKPOINT_EVERY))


def trained_already(run: Path, job: dict) -> bool:
    """Whether ``run`` holds a finished training of ``job`` (its ``run.json`` and ``model.zip``, with the same
    features, reward, seed and steps, and every ``--hyperparameter`` the job overrides), so that a resumed experiment
    only evaluates it."""
    settings, model = run / "run.json", run / "model.zip"
    if not (settings.is_file() and model.is_file()):
        return False
    done = json.loads(settings.read_text())
    used = done.get("hyperparameters") or {}
    wanted = dict(job.get("hyperparameters") or {})
    if "rollout_steps" in wanted:  # the run keeps it as SB3's per-env n_steps (agents.train.load_config)
        wanted["n_steps"] = max(int(wanted.pop("rollout_steps")) // int(done.get("n_envs") or 1), 1)
    return (all(done.get(key) == job[key] for key in ("features", "reward", "seed", "steps", "paired_budget"))
            and done.get("train_pieces", "paired") == job.get("train_pieces", "paired")
            and all(used.get(key) == value for key, value in wanted.items()))


def arm_name(features: str, reward: str, rewards: list[str], train_pieces: str = "paired") -> str:
    """An arm's name in an experiment's folders, summary and result files: its features, its reward unless every
    arm trains on the env's, and ``-unpaired`` when it trains on every score of the split (``--train-pieces all``)."""
    name = features if rewards == ["env"] else f"{features}-{reward}"
    return f"{name}-unpaired" if train_pieces == "all" else name


def leaderboard_name(job: dict, suffix: str) -> str:
    """The leaderboard's file name of a run: ``ScoreFollowing-v0__dagger_ppo_lmm_s0__8-1M`` + ``suffix``."""
    from agents.train import track_of
    from lmm_envs.benchmark.leaderboard import result_filename

    recipe = f"{job['warm_start']}_ppo" if job["warm_start"] else "ppo"
    track = track_of(job["paired_budget"], job["steps"])
    return str(Path(result_filename(job["env"], f"{recipe}_{job['arm']}_s{job['seed']}", track)).with_suffix(suffix))


def _row(arm: str, seed: int, result: dict) -> dict:
    """A run's line in the summary, from its result file."""
    return {"arm": arm, "seed": seed, "score": result["normalised_score"]["mean"],
            "main": result["aggregate"][result["main_metric"]]["mean"], "metric": result["main_metric"]}


def t_interval(values: list[float]) -> tuple[float, float]:
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.experiment", description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="lmm/ScoreFollowing-v0")
    ap.add_argument("--paired-budget", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--features", nargs="+", default=["raw", "lmm"], choices=["raw", "lmm", "match", "hear"])
    ap.add_argument("--n-envs", type=int, default=16, help="episodes stepped together in each run")
    ap.add_argument("--warm-start", choices=["bc", "dagger"], help="clone the teacher first (steps count)")
    ap.add_argument("--warm-start-steps", type=int, help="env steps of the warm start (default: half of --steps)")
    ap.add_argument("--teacher", default="oracle", help="the registered agent a warm start imitates")
    ap.add_argument("--reward", nargs="+", default=["env"], choices=list(REWARDS),
                    help="lm: LM^A's likelihood of the agent's own audio (SightReading, PlayByEar); score: h's "
                         "hearing of it against the score (SightReading); lm-score: the agent's own audio through "
                         "LM^A and the K-pair --mapping against LM^V's reading of the score (SightReading); "
                         "lm-margin: the same, less its mean agreement with the score read earlier, later and "
                         "transposed; lm-contrast: the InfoNCE log-probability of the score's reading among those")
    ap.add_argument("--h-model", help="h: A -> M for --reward score and --features hear (python -m agents.hear "
                                      "makes them)")
    ap.add_argument("--lm-dir", default="runs/lm")
    ap.add_argument("--mapping", default="regression", choices=MAPPING_METHODS,
                    help="the few-pair mapping the lmm features hear through")
    ap.add_argument("--limit", type=int, default=0, help="evaluate on N protocol pieces only (see --subset)")
    ap.add_argument("--subset", choices=SUBSETS, default="spread",
                    help="with --limit: N pieces spread over the protocol's list (the default; it keeps the mix of "
                         "collections) or the first N (all Bach chorales on the test split)")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (one CPU thread each)")
    add_ray_option(ap, "each run a Ray task")
    ap.add_argument("--gpus-per-run", type=float, default=1.0,
                    help="with --ray on a cluster with GPUs: the share of a GPU each run asks for (default 1)")
    ap.add_argument("--train-style", choices=sorted(EXPRESSIVE_STYLES),
                    help="expressive style of the training renderings (default: the envs', vienna)")
    ap.add_argument("--warm-start-style", choices=sorted(EXPRESSIVE_STYLES),
                    help="expressive style of the warm start's demonstrations only (a curriculum)")
    add_train_pieces_option(ap)
    ap.add_argument("--hyperparameter", action="append", metavar="KEY=VALUE",
                    help="override one of agents/configs/<env>.yaml's PPO hyperparameters in every run, repeatable "
                         "(e.g. --hyperparameter gamma=0.8)")
    ap.add_argument("--features-arg", action="append", metavar="KEY=VALUE",
                    help="an option of the features extractor for every run, repeatable (e.g. --features hear "
                         "--features-arg onsets=true)")
    ap.add_argument("--leaderboard", metavar="DIR",
                    help="keep each trained model small in DIR/checkpoints, evaluate the kept file under the full "
                         "protocol and write its result to DIR/results too, under the leaderboard's file names")
    ap.add_argument("--best-on-val", type=int, default=0, metavar="EVERY",
                    help="score each run's checkpoints (the first, one past every EVERY RL steps, the last) on val "
                         "pieces and evaluate the best instead of the last; the arm is named <features>-best-on-val. "
                         "Works on finished runs too (with --resume)")
    ap.add_argument("--val-pieces", type=int, default=16, help="with --best-on-val: how many val pieces")
    ap.add_argument("--out", default="runs/experiment")
    ap.add_argument("--resume", action="store_true",
                    help="carry on an experiment that was cut off: runs with a result file in <out>/results are "
                         "read, not run again; the others resume from their latest checkpoint")
    args = ap.parse_args(argv)
    try:
        return _experiment(args)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _experiment(args: argparse.Namespace) -> int:
    """Every (features, reward, seed) run of ``args``, trained, evaluated and summarised."""
    from agents.train import check_train_pieces, checked_features_args
    from lmm_envs.cli import key_values

    if args.leaderboard and args.limit:
        raise ConfigError(f"--leaderboard scores on every protocol piece, --limit {args.limit} on a few: drop one of "
                          "them (a --limit result is custom, off the leaderboard's tracks)")
    if args.best_on_val < 0 or args.val_pieces < 1:
        raise ConfigError(f"--best-on-val takes the RL steps between scored checkpoints (0: keep the last) and "
                          f"--val-pieces a positive count, got {args.best_on_val} and {args.val_pieces}")
    features_args = key_values(args.features_arg or [], "--features-arg", "frames=16")
    hyperparameters = key_values(args.hyperparameter or [], "--hyperparameter", "gamma=0.8")
    if hyperparameters:  # a bad key stops here, before any run starts
        from agents.train import load_config

        load_config(args.env, "ppo", args.n_envs, args.warm_start is not None, hyperparameters)
    for f in args.features:  # a bad option stops here, before any run starts
        checked_features_args(f, features_args)
    for r in args.reward:
        check_train_pieces(args.train_pieces, r, args.paired_budget)
    arms = [(f, r, arm_name(f, r, args.reward, args.train_pieces)) for f in args.features for r in args.reward]
    chosen = "-best-on-val" if args.best_on_val else ""  # the same runs, another model of each: named apart
    jobs = [dict(env=args.env, paired_budget=args.paired_budget, steps=args.steps, seed=s, features=f, reward=r,
                 arm=arm + chosen, run_name=f"{arm}_s{s}", best_on_val=args.best_on_val, val_pieces=args.val_pieces,
                 lm_dir=args.lm_dir, mapping=args.mapping, limit=args.limit, subset=args.subset, out=args.out, n_envs=args.n_envs,
                 warm_start=args.warm_start, warm_start_steps=args.warm_start_steps, teacher=args.teacher,
                 use_gpu=args.ray is not None and args.gpus_per_run > 0, train_style=args.train_style,
                 warm_start_style=args.warm_start_style, h_model=args.h_model, resume=args.resume,
                 features_args=features_args, leaderboard=args.leaderboard, hyperparameters=hyperparameters,
                 train_pieces=args.train_pieces)
            for f, r, arm in arms for s in args.seeds]
    from lmm_envs.benchmark.evaluate import write_result
    from lmm_envs.parallel import run_tasks

    def result_path(arm: str, seed: int) -> Path:
        return Path(args.out) / "results" / f"{arm}_s{seed}.json"

    done = {(j["arm"], j["seed"]): result_path(j["arm"], j["seed"]) for j in jobs
            if args.resume and result_path(j["arm"], j["seed"]).is_file()}
    todo = [j for j in jobs if (j["arm"], j["seed"]) not in done]

    def keep(row: dict) -> None:  # each result written as its run ends, on the machine that asked: a cut-off
        result = row.pop("result")  # experiment keeps what finished
        write_result(result, result_path(row["arm"], row["seed"]))
        if args.leaderboard:
            job = next(j for j in jobs if (j["arm"], j["seed"]) == (row["arm"], row["seed"]))
            write_result(result, Path(args.leaderboard) / "results" / leaderboard_name(job, ".json"))

    # each run in a process of its own: an idle worker would keep a finished run's gigabytes (an `lmm` run at
    # 208 pairs holds 4 to 6.5 GB) while the runs after it grow
    ran = run_tasks(_one, todo, workers=args.parallel, ray_address=args.ray, num_gpus=args.gpus_per_run,
                    on_result=keep, fresh_worker_per_task=True) if todo else []
    finished = {(r["arm"], r["seed"]): r for r in ran}
    finished.update({key: _row(*key, json.loads(path.read_text())) for key, path in done.items()})
    rows = [finished[(j["arm"], j["seed"])] for j in jobs]
    summary = {}
    for f in (arm + chosen for _, _, arm in arms):
        mine = [r for r in rows if r["arm"] == f]
        scores, mains = [r["score"] for r in mine], [r["main"] for r in mine]
        summary[f] = {"seeds": [r["seed"] for r in mine], "normalised_score": scores, rows[0]["metric"]: mains,
                      "normalised_mean": float(np.mean(scores)), "normalised_interval": t_interval(scores),
                      "main_mean": float(np.mean(mains)), "main_interval": t_interval(mains)}
        lo, hi = summary[f]["normalised_interval"]
        mlo, mhi = summary[f]["main_interval"]
        print(f"{f:>7}: normalised score {np.mean(scores):.3f} [{lo:.3f}, {hi:.3f}], {rows[0]['metric']} "
              f"{np.mean(mains):.3f} [{mlo:.3f}, {mhi:.3f}] over seeds {[r['seed'] for r in mine]}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
