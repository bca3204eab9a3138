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


def _count(minimum: int):
    """An argparse type: an integer >= ``minimum`` (argparse reports anything else in one line, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _finite(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0")
    return value


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
    from lmm_envs.benchmark.protocol import subset_indices
    from lmm_envs.music import corpus
    from lmm_envs.parallel import default_workers
    from lmm_envs.prepare import prepare_pieces

    every = corpus.piece_ids(split=args.split)
    ids = [every[i] for i in subset_indices(len(every), args.limit, args.subset)]
    report = prepare_pieces(ids, variants=args.variants, expressiveness=args.expressiveness, synth=args.synth,
                            style=args.style, workers=args.workers or default_workers(), ray_address=args.ray,
                            progress=_progress(args), playing_targets=args.playing_targets)
    print(f"{report.line()}; {args.synth}, expressiveness {args.expressiveness:g}, style {args.style}")
    return 0


RENDER_SUFFIXES = {".png", ".mp4", ".gif", ".wav"}


# --- evaluate / render ---------------------------------------------------------------------------------------
def _env_args(items: list[str]) -> dict:
    """``KEY=VALUE`` options for the env (values read as JSON when they parse: numbers, true/false)."""
    return key_values(items, "--env-arg", "polyphony=poly")


def key_values(items: list[str], option: str, example: str) -> dict:
    """Repeated ``KEY=VALUE`` options as a dict, values read as JSON when they parse (numbers, true/false)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LMMError(f"{option} takes KEY=VALUE (e.g. {example}), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _make_env(args, **extra):
    import gymnasium as gym

    from lmm_envs.envs.options import check_env_options

    kwargs = dict(expressiveness=args.expressiveness, synth=args.synth, **extra)
    kwargs.update(_env_args(getattr(args, "env_arg", None) or []))
    if getattr(args, "pieces", None):
        kwargs["pieces"] = args.pieces
    else:
        kwargs["split"] = args.split
    check_env_options(args.env, kwargs)  # before gym.make, which acts on some options itself (render_mode)
    return gym.make(args.env, **kwargs)


def _summary_line(summary: dict) -> str:
    """One JSON line, strict: a NaN (no value) is written as null."""
    from lmm_envs.benchmark.evaluate import plain

    return json.dumps(plain(summary), allow_nan=False)


def cmd_evaluate(args) -> int:
    from lmm_envs.benchmark.evaluate import evaluate, write_result
    from lmm_envs.files import check_output_file

    # --out here, the arguments first thing in evaluate(): both before any episode runs, so nothing is lost
    if args.out:
        check_output_file(args.out)
    result = evaluate(args.env, args.agent, agent_name=args.name, track=args.track, pieces=args.pieces,
                      nominal_tempo=args.nominal_tempo,
                      limit=args.limit or None, synth=args.synth, workers=args.workers, trust=args.trust_checkpoint,
                      progress=_progress(args), env_kwargs=_env_args(args.env_arg or []) or None,
                      ray_address=args.ray, subset=args.subset)

    def rounded(value):
        return None if value is None else round(value, 4)

    summary = {"agent": result["agent"]["name"], "track": result["track"], "episodes": len(result["episodes"]),
               "normalised_score": rounded(result["normalised_score"]["mean"]),
               **{k: rounded(v["mean"]) for k, v in result["aggregate"].items()}}
    print(_summary_line(summary))
    if args.out:
        write_result(result, Path(args.out))
    return 0


def cmd_leaderboard(args) -> int:
    from lmm_envs.benchmark.leaderboard import (
        html_page,
        load_results,
        markdown,
        rebuild_baselines,
        verify_result,
    )
    from lmm_envs.files import check_output_file

    for path in (args.out, args.html):
        if path:
            check_output_file(path, "--out" if path == args.out else "--html")
    folder = Path(args.folder)
    if args.rebuild_baselines:
        written = rebuild_baselines(folder, workers=args.workers, progress=_progress(args))
        print(f"wrote {len(written)} baseline results to {folder}")
    results = load_results(folder)
    real = load_results(args.real) if args.real else []
    if args.verify:
        from tqdm import tqdm

        for r in tqdm(results, desc="verifying", disable=not _progress(args)):
            r["verified"] = verify_result(r, folder, episodes=args.verify)
            if not r["verified"].startswith("yes"):
                print(f"warning: {r['agent']['name']!r} on {r['env_id']} not verified: {r['verified']}",
                      file=sys.stderr)
    text = markdown(results)
    if real:
        from lmm_envs.benchmark.real_table import real_performance_markdown

        text = text.rstrip("\n") + "\n\n" + real_performance_markdown(real)
    if args.out:
        _write_text_atomic(Path(args.out), text)
    else:
        print(text)
    if args.html:
        page = html_page(results)
        if real:
            from lmm_envs.benchmark.real_table import real_performance_html

            page = page.replace("</body></html>", real_performance_html(real) + "\n</body></html>")
        _write_text_atomic(Path(args.html), page)
    if args.out or args.html:
        print(f"leaderboard of {len(results)} results: " + ", ".join(str(p) for p in (args.out, args.html) if p))
    return 0


def _write_text_atomic(path: Path, text: str) -> None:
    from lmm_envs.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


def render_episode(env, agent: str, seed: int, options: dict | None) -> list:
    from lmm_envs.benchmark.evaluate import run_episode

    frames: list = []
    run_episode(env, agent, seed=seed, options=options, record=lambda e: frames.append(e.render()))
    return frames


def write_frames(frames: list, out: Path, fps: int) -> Path:
    """Write a PNG (the middle frame) or an MP4 (all frames; needs moviepy: pip install 'lmm-envs[video]')."""
    from lmm_envs.files import atomic_path

    suffix = out.suffix.lower()
    if suffix not in RENDER_SUFFIXES - {".wav"}:
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
    from lmm_envs.files import check_output_file

    if not args.out and not args.plot:
        raise LMMError("give --out (a .png frame, .mp4/.gif video or .wav) and/or --plot (a PNG figure)")
    # both paths checked before any episode runs, so a bad one leaves nothing written
    plot = check_output_file(args.plot) if args.plot else None
    if plot is not None and plot.suffix.lower() != ".png":
        raise LMMError(f"--plot writes a PNG; give a path ending in .png, not {plot.suffix!r}")
    out = check_output_file(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in RENDER_SUFFIXES:
        raise LMMError(f"cannot write {out.suffix!r}; use .png, .mp4, .gif or (for the playing tasks) .wav")
    options = {"piece": args.piece, "variant": 0} if args.piece else None
    if plot is not None:
        from lmm_envs.benchmark.episode_plot import follow_episode, plot_following
        from lmm_envs.benchmark.protocol import PROTOCOLS

        protocol = PROTOCOLS.get(args.env)  # as evaluated: a ScoreFollowing episode runs to the end
        env = _make_env(args, **(protocol.env_kwargs if protocol else {}))
        episode = follow_episode(env, args.agent, args.seed, options)
        plot_following(episode, plot, args.agent)
        print(f"wrote {plot} (piece {episode['piece']}, within 300 ms {episode['metrics']['within_300ms']:.2f})")
        if out is None:
            return 0
    if out.suffix.lower() == ".wav":
        env = _make_env(args)
        out = write_episode_audio(env, args.agent, args.seed, options, out)
        print(f"wrote {out} (piece {env.unwrapped.piece.id})")
        return 0
    env = _make_env(args, render_mode="rgb_array")
    frames = render_episode(env, args.agent, args.seed, options)
    out = write_frames(frames, out, env.metadata.get("render_fps", 20))
    print(f"wrote {out} ({len(frames)} frames, piece {env.unwrapped.piece.id})")
    return 0


# --- quickstart ------------------------------------------------------------------------------------------------
QUICK_AGENT = "dagger+ppo (quickstart)"


def cmd_quickstart(args) -> int:
    """Data -> env -> baselines -> a learned agent (DAgger + PPO) -> evaluation -> leaderboard, on
    lmm/ScoreFollowing-v0."""
    from tqdm import tqdm

    from lmm_envs.benchmark.evaluate import evaluate, write_result
    from lmm_envs.benchmark.leaderboard import html_page, load_results, markdown
    from lmm_envs.benchmark.registry import load_trainer
    from lmm_envs.files import check_output_folder
    from lmm_envs.music import corpus
    from lmm_envs.pieces import performance_seed, prepare_piece

    env_id = "lmm/ScoreFollowing-v0"
    out = check_output_folder(args.out)
    train = load_trainer("quickstart")
    results = out / "results"
    progress = _progress(args)
    ids = corpus.piece_ids(split="test")[: args.pieces]
    for pid in tqdm(ids, desc="preparing test pieces", disable=not progress):
        for variant in (0, 1):
            prepare_piece(pid, 1.0, performance_seed(pid, variant))
    scored = {}
    for agent in ("random", "oracle", "oltw", "keep_tempo"):
        scored[agent] = evaluate(env_id, agent, limit=args.pieces, progress=progress, subset="first")
        write_result(scored[agent], results / f"{agent}.json")
    model_path = out / "dagger_ppo_scorefollowing.zip"
    curve = train(env_id, model_path, args.steps, progress)
    scored["learned"] = evaluate(env_id, str(model_path), agent_name=QUICK_AGENT, limit=args.pieces,
                                 progress=progress, learning_curve=curve, subset="first")
    write_result(scored["learned"], results / "learned.json")
    loaded = load_results(results)
    text = markdown(loaded)
    print("\n" + text)
    print(_quickstart_verdict(scored, args.steps))
    _write_text_atomic(out / "LEADERBOARD.md", text)
    _write_text_atomic(out / "leaderboard.html", html_page(loaded))
    env = _make_env(argparse.Namespace(env=env_id, expressiveness=1.0, synth="harmonic", split="test", pieces=None),
                    pieces=ids, render_mode="rgb_array")
    image = write_frames(render_episode(env, "oltw", 0, {"piece": ids[0], "variant": 0}),
                         out / "quickstart_episode.png", 20)
    print(f"wrote {results}/, {out / 'LEADERBOARD.md'}, {out / 'leaderboard.html'}, {model_path} and {image}")
    return 0


def _quickstart_verdict(scored: dict, steps: int) -> str:
    """One paragraph: how the learned agent compares with random, keep-tempo and OLTW on the same episodes."""
    def score(key):
        return scored[key]["normalised_score"]

    def within(key):
        return scored[key]["aggregate"]["within_300ms"]["mean"]

    learned, keep = score("learned"), score("keep_tempo")
    if learned["mean"] is None or keep["mean"] is None:
        return "the learned agent's normalised score is undefined on these episodes"
    verdict = "beats" if learned["low"] > keep["high"] else "does not beat"
    return (f"The learned agent (DAgger from the oracle, then PPO; {steps} env steps on the 8 paired pieces) scores "
            f"{learned['mean']:.3f} [{learned['low']:.3f}, {learned['high']:.3f}] normalised "
            f"(within 300 ms: {within('learned'):.3f}), against keep-the-tempo {keep['mean']:.3f} "
            f"({within('keep_tempo'):.3f}), random 0 ({within('random'):.3f}) and OLTW {score('oltw')['mean']:.3f} "
            f"({within('oltw'):.3f}): it {verdict} keep-the-tempo by {learned['mean'] - keep['mean']:+.3f} "
            f"(95% intervals {'apart' if verdict == 'beats' else 'overlapping'}).")


def build_parser() -> argparse.ArgumentParser:
    from lmm_envs.benchmark.protocol import SUBSETS
    from lmm_envs.music.expressive import DEFAULT_STYLE, EXPRESSIVE_STYLES
    from lmm_envs.parallel import add_ray_option
    from lmm_envs.pieces import PERFORMANCES_PER_PIECE

    ap = argparse.ArgumentParser(prog="lmm-envs", description="Language model mapping environments for music.")
    sub = ap.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart",
                       help="the main job: data -> env -> baselines -> a learned agent -> leaderboard -> an episode")
    q.add_argument("--pieces", type=_count(1), default=8, help="how many test pieces (default 8)")
    q.add_argument("--steps", type=_count(16), default=16384,
                   help="env steps of training, half DAgger and half PPO (default 16384)")
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
    dp.add_argument("--expressiveness", type=_finite, default=1.0)
    dp.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
    dp.add_argument("--style", default=DEFAULT_STYLE, choices=sorted(EXPRESSIVE_STYLES),
                    help=f"expressive style, as the envs' expressive_style (default {DEFAULT_STYLE})")
    dp.add_argument("--variants", type=_count(1), default=PERFORMANCES_PER_PIECE,
                    help=f"renderings per piece, as the envs' performances_per_piece (default {PERFORMANCES_PER_PIECE}: "
                         "every rendering an env draws)")
    dp.add_argument("--limit", type=_count(0), default=0, help="only N pieces (0: all), chosen as --subset says")
    dp.add_argument("--subset", choices=SUBSETS, default="spread",
                    help="with --limit: N pieces spread evenly over the split (the default; what evaluate --limit "
                         "N runs on the test split) or the first N")
    dp.add_argument("--workers", type=_count(0), default=0, help="local processes (default 0: one per core)")
    dp.add_argument("--playing-targets", action="store_true",
                    help="also what the playing envs read at a reset: the SightReading / PlayByEar targets and "
                         "Accompaniment's soloist part of every rendering")
    add_ray_option(dp, "one Ray task per piece, written to $LMM_ENVS_CACHE (a path every node can write)")
    dp.add_argument("--quiet", action="store_true")
    dp.set_defaults(func=cmd_data_prepare)

    e = sub.add_parser("evaluate", help="evaluate an agent under an env's protocol and write a result file")
    e.add_argument("--env", default="lmm/ScoreFollowing-v0")
    e.add_argument("--agent", default="oltw", help="a registered agent name (random, oracle, oltw, ...) or an SB3 .zip")
    e.add_argument("--name", help="the agent's name on the leaderboard (default: --agent)")
    e.add_argument("--track", default="baseline",
                   help="paired budget/env steps the agent used: 8/100k, 8/1M, 64/100k, 64/1M, all/100k, all/1M, "
                        "or baseline (neither; the default)")
    e.add_argument("--pieces", help="your own pieces, off the tracks: a piece list CSV (score,performance,alignment) "
                                    "or a dataset folder (match files, or performances with alignments)")
    e.add_argument("--nominal-tempo", choices=["score", "performance"],
                   help="with --pieces: the score's tempo marks (default) or each performance's own mean tempo")
    e.add_argument("--limit", type=_count(0), default=0,
                   help="only N protocol pieces (off the tracks; 0: all), chosen as --subset says")
    e.add_argument("--subset", choices=SUBSETS, default="spread",
                   help="with --limit: N pieces spread evenly over the protocol's list, keeping its mix of "
                        "collections (the default), or the first N")
    e.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
    e.add_argument("--workers", type=_count(1), default=1, help="episodes in parallel processes (same numbers)")
    add_ray_option(e, "episodes as Ray tasks; the same result file as a local run")
    e.add_argument("--trust-checkpoint", action="store_true",
                   help="allow an SB3 zip whose pickled policy_kwargs run code on loading")
    e.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="an env option beyond the protocol's, repeatable (the result is then off the tracks)")
    e.add_argument("--out", help="write the result file (JSON) here")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    lb = sub.add_parser("leaderboard", help="result files -> Markdown tables (and an HTML page with plots)")
    lb.add_argument("folder", nargs="?", default="leaderboard/results", help="a folder of result files")
    lb.add_argument("--out", help="write the Markdown here (default: print it)")
    lb.add_argument("--html", help="also write an HTML page with plots")
    lb.add_argument("--rebuild-baselines", action="store_true",
                    help="first evaluate random, oracle and the classic baselines of every env into the folder")
    lb.add_argument("--workers", type=_count(1), default=1)
    lb.add_argument("--real", metavar="FOLDER",
                    help="also a table of the result files in FOLDER: agents on real performances (--pieces runs)")
    lb.add_argument("--verify", type=_count(1), nargs="?", const=2, default=0, metavar="N",
                    help="re-run N sampled episodes (default 2) of each result from its baseline name or checkpoint "
                         "and add a 'verified' column")
    lb.add_argument("--quiet", action="store_true")
    lb.set_defaults(func=cmd_leaderboard)

    r = sub.add_parser("render", help="write one episode as .png (middle frame), .mp4/.gif, or .wav (its audio)")
    r.add_argument("--env", default="lmm/ScoreFollowing-v0")
    r.add_argument("--agent", default="oltw", help="a registered agent name (random, oracle, oltw, ...)")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("--pieces", help="a piece list CSV (score,performance,alignment) or a dataset folder instead "
                                    "of a split")
    r.add_argument("--expressiveness", type=_finite, default=1.0)
    r.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
    r.add_argument("--seed", type=_count(0), default=0)
    r.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="an env option, repeatable (e.g. --env-arg polyphony=poly --env-arg velocity=true)")
    r.add_argument("--piece", help="piece id (default: drawn from the split with --seed)")
    r.add_argument("--out", help="a .png frame, .mp4/.gif video or (playing tasks) .wav of the episode")
    r.add_argument("--plot", help="a PNG figure of the episode: true against estimated score position, and the "
                                  "error (ScoreFollowing)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_render)
    return ap


def _one_line_warnings() -> None:
    """Show the suite's own warnings as one ``warning: ...`` line each (no source line under them)."""
    import warnings

    from lmm_envs.errors import LMMWarning

    shown = warnings.showwarning
    if getattr(shown, "one_line", False):  # already installed (main() called again in one process)
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, LMMWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show.one_line = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _one_line_warnings()
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
