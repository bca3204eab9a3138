"""The ``lmm-envs`` command: quickstart | data | evaluate | render.

User errors print one line (``error: ...``) and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmm_envs.errors import LMMError


def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


# --- data --------------------------------------------------------------------------------------------------
def cmd_data_list(args) -> int:
    from lmm_envs.music import corpus

    ids = corpus.piece_ids(split=args.split, pool=args.pool, collection=args.collection)
    for pid in ids:
        info = corpus.piece_info(pid)
        print(f"{pid}\t{info.split}\t{info.pool or '-'}\t{info.n_parts} parts\t{info.seconds:.1f} s")
    print(f"{len(ids)} pieces", file=sys.stderr)
    return 0


def cmd_data_show(args) -> int:
    from dataclasses import asdict

    from lmm_envs.music import corpus
    from lmm_envs.pieces import corpus_score

    info = corpus.piece_info(args.id)
    score = corpus_score(args.id)
    out = {**asdict(info), "parts": list(score.part_names), "tempo_bpm": score.tempo.bpm.tolist(),
           "fermatas": len(score.fermatas), "music21_file": str(corpus.source_path(args.id))}
    print(json.dumps(out, indent=2))
    return 0


def cmd_data_prepare(args) -> int:
    from tqdm import tqdm

    from lmm_envs.music import corpus
    from lmm_envs.pieces import performance_seed, prepare_piece

    ids = corpus.piece_ids(split=args.split)[: args.limit or None]
    jobs = [(pid, v) for pid in ids for v in range(args.variants)]
    for pid, v in tqdm(jobs, desc=f"preparing {args.split}", disable=not _progress(args), unit="perf"):
        prepare_piece(pid, args.expressiveness, performance_seed(pid, v), args.synth)
    print(f"prepared {len(jobs)} performances of {len(ids)} pieces ({args.synth}, expressiveness {args.expressiveness})")
    return 0


# --- evaluate / render ---------------------------------------------------------------------------------------
def _env_args(items: list[str]) -> dict:
    """``KEY=VALUE`` options for the env (values read as JSON when they parse: numbers, true/false)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LMMError(f"--env-arg takes KEY=VALUE (e.g. polyphony=poly), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _make_env(args, **extra):
    import gymnasium as gym

    import lmm_envs  # noqa: F401  (registers ids)

    kwargs = dict(expressiveness=args.expressiveness, synth=args.synth, **extra)
    kwargs.update(_env_args(getattr(args, "env_arg", None) or []))
    if getattr(args, "pieces", None):
        kwargs["pieces"] = args.pieces
    else:
        kwargs["split"] = args.split
    if args.env not in gym.registry:
        known = ", ".join(k for k in gym.registry if k.startswith("lmm/"))
        raise LMMError(f"unknown env id {args.env!r}; known: {known}")
    return gym.make(args.env, **kwargs)


def cmd_evaluate(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from lmm_envs.benchmark.evaluate import run_episode

    env = _make_env(args)
    sources = env.unwrapped.sources[: args.limit or None]
    rows = []
    for i, _source in enumerate(tqdm(sources, desc=f"evaluating {args.agent}", disable=not _progress(args))):
        rows.append(run_episode(env, args.agent, seed=args.seed + i, options={"piece": i, "variant": 0}))
    keys = sorted(rows[0]["metrics"])
    mean = {k: float(np.nanmean([r["metrics"][k] for r in rows])) for k in keys}
    result = {"env_id": args.env, "agent": args.agent, "n_pieces": len(sources), "mean": mean, "pieces": rows}
    print(json.dumps({"agent": args.agent, "n_pieces": len(rows), **{k: round(v, 4) for k, v in mean.items()}}))
    if args.out:
        _write_json_atomic(Path(args.out), result)
    return 0


def _write_json_atomic(path: Path, data) -> None:
    from lmm_envs.files import atomic_path

    with atomic_path(path) as tmp, tmp.open("w") as f:
        json.dump(data, f, indent=1, default=float)


def render_episode(env, agent: str, seed: int, options: dict | None) -> list:
    from lmm_envs.benchmark.evaluate import run_episode

    frames: list = []
    run_episode(env, agent, seed=seed, options=options, record=lambda e: frames.append(e.render()))
    return frames


def write_frames(frames: list, out: Path, fps: int) -> Path:
    """Write a PNG (the middle frame) or an MP4 (all frames; needs moviepy: pip install 'lmm-envs[video]')."""
    from lmm_envs.files import atomic_path

    suffix = out.suffix.lower()
    if suffix not in (".png", ".mp4", ".gif"):
        raise LMMError(f"cannot write {suffix!r}; use .png, .mp4, .gif or (for the playing tasks) .wav")
    with atomic_path(out) as tmp:
        if suffix == ".png":
            from PIL import Image

            Image.fromarray(frames[len(frames) // 2]).save(tmp)
        else:
            try:
                from moviepy import ImageSequenceClip
            except ImportError:
                try:
                    from moviepy.editor import ImageSequenceClip
                except ImportError:
                    from lmm_envs.errors import MissingDependencyError

                    raise MissingDependencyError("writing video needs moviepy: pip install 'lmm-envs[video]'") from None
            clip = ImageSequenceClip(frames, fps=fps)
            if suffix == ".gif":
                clip.write_gif(str(tmp), logger=None)
            else:
                clip.write_videofile(str(tmp), logger=None, codec="libx264", audio=False)
    return out


def write_episode_audio(env, agent: str, seed: int, options: dict | None, out: Path) -> Path:
    """Play one episode and write what was heard (e.g. soloist and accompaniment) as a WAV file."""
    from lmm_envs.audio.wav import write_audio
    from lmm_envs.benchmark.evaluate import run_episode

    if not hasattr(env.unwrapped, "episode_audio"):
        raise LMMError(f"{env.spec.id} makes no episode audio; .wav works with lmm/Accompaniment-v0, "
                       "lmm/SightReading-v0 and lmm/PlayByEar-v0")
    run_episode(env, agent, seed=seed, options=options)
    write_audio(out, env.unwrapped.episode_audio(), env.unwrapped.synth.sample_rate)
    return out


def cmd_render(args) -> int:
    options = {"piece": args.piece, "variant": 0} if args.piece else None
    if Path(args.out).suffix.lower() == ".wav":
        env = _make_env(args)
        out = write_episode_audio(env, args.agent, args.seed, options, Path(args.out))
        print(f"wrote {out} (piece {env.unwrapped.piece.id})")
        return 0
    env = _make_env(args, render_mode="rgb_array")
    frames = render_episode(env, args.agent, args.seed, options)
    out = write_frames(frames, Path(args.out), env.metadata.get("render_fps", 20))
    print(f"wrote {out} ({len(frames)} frames, piece {env.unwrapped.piece.id})")
    return 0


# --- quickstart ------------------------------------------------------------------------------------------------
def cmd_quickstart(args) -> int:
    """Prepare a few test pieces, run the baselines on lmm/ScoreFollowing-v0, print a table, render an episode."""
    import numpy as np
    from tqdm import tqdm

    from lmm_envs.benchmark.evaluate import run_episode
    from lmm_envs.music import corpus

    out = Path(args.out)
    ids = corpus.piece_ids(split="test")[: args.pieces]
    ns = argparse.Namespace(env="lmm/ScoreFollowing-v0", expressiveness=1.0, synth="harmonic", split="test",
                            pieces=None)
    env = _make_env(ns, pieces=ids, render_mode="rgb_array")
    table = {}
    for agent in ("random", "oltw", "oracle"):
        metrics = []
        for i, pid in enumerate(tqdm(ids, desc=f"{agent:>6}", disable=not _progress(args))):
            metrics.append(run_episode(env, agent, seed=i, options={"piece": pid, "variant": 0})["metrics"])
        table[agent] = {k: float(np.nanmean([m[k] for m in metrics])) for k in metrics[0]}
    cols = ["tracking_ratio", "within_100ms", "within_300ms", "within_1000ms", "mean_abs_error_s"]
    print(f"\nlmm/ScoreFollowing-v0, {len(ids)} test pieces, expressiveness 1.0, HarmonicSynth")
    print("| agent | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for agent, m in table.items():
        print(f"| {agent} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + " |")
    frames = render_episode(env, "oltw", 0, {"piece": ids[0], "variant": 0})
    image = write_frames(frames, out / "quickstart_episode.png", 20)
    _write_json_atomic(out / "quickstart.json", table)
    print(f"\nwrote {out / 'quickstart.json'} and {image}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lmm-envs", description="Language model mapping environments for music.")
    sub = ap.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="the main job: data -> env -> baselines -> table and a rendered episode")
    q.add_argument("--pieces", type=int, default=8, help="how many test pieces (default 8)")
    q.add_argument("--out", default="out", help="output folder (default ./out)")
    q.add_argument("--quiet", action="store_true", help="hide progress bars")
    q.set_defaults(func=cmd_quickstart)

    d = sub.add_parser("data", help="the bundled corpus: list, show, prepare")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="list bundled piece ids")
    dl.add_argument("--split", choices=["train", "val", "test"])
    dl.add_argument("--pool", choices=["unpaired_score", "unpaired_audio", "paired"])
    dl.add_argument("--collection", choices=["bach", "ryans"])
    dl.set_defaults(func=cmd_data_list)
    ds = dsub.add_parser("show", help="describe one piece")
    ds.add_argument("id")
    ds.set_defaults(func=cmd_data_show)
    dp = dsub.add_parser("prepare", help="render, synthesize and cache a split ahead of time")
    dp.add_argument("--split", choices=["train", "val", "test"], required=True)
    dp.add_argument("--expressiveness", type=float, default=1.0)
    dp.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
    dp.add_argument("--variants", type=int, default=1, help="performances per piece (default 1)")
    dp.add_argument("--limit", type=int, default=0, help="only the first N pieces")
    dp.add_argument("--quiet", action="store_true")
    dp.set_defaults(func=cmd_data_prepare)

    for name, func, helptext in (("evaluate", cmd_evaluate, "run an agent over a split and print its metrics"),
                                 ("render", cmd_render, "write one episode as .png (middle frame) or .mp4")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--env", default="lmm/ScoreFollowing-v0")
        p.add_argument("--agent", default="oltw", help="a registered agent name (random, oracle, oltw, ...)")
        p.add_argument("--split", default="test", choices=["train", "val", "test"])
        p.add_argument("--pieces", help="a piece list CSV (score,performance,alignment) instead of a split")
        p.add_argument("--expressiveness", type=float, default=1.0)
        p.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                       help="an env option, repeatable (e.g. --env-arg polyphony=poly --env-arg velocity=true)")
        p.add_argument("--quiet", action="store_true")
        if name == "evaluate":
            p.add_argument("--limit", type=int, default=0, help="only the first N pieces")
            p.add_argument("--out", help="write per-piece results as JSON")
        else:
            p.add_argument("--piece", help="piece id (default: drawn from the split with --seed)")
            p.add_argument("--out", required=True)
        p.set_defaults(func=func)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
