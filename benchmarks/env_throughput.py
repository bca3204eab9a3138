"""Steps per second of every lmm id, single and vectorized, against references measured in the same run.

    python benchmarks/env_throughput.py [--steps 20000] [--num-envs 64] [--rounds 3] [--no-full-split]

1. Single env through ``gym.make``, next to CartPole-v1's (the ratio music env / CartPole), on 8 test pieces held
   in memory; then over the **whole train split** as a training run meets it (``split="train"``: 1157 pieces x 8
   renderings, read from a warm disk cache, episodes ending and resetting onto new pieces), single env and native
   vector env, with the split's scores first on disk, then in memory. With the scores in memory each env's
   whole-split, 8-piece and CartPole figures are measured in turn, ``--rounds`` times on other episodes each round,
   and the medians and the medians of the rounds' ratios are printed: the figures compared then meet the same load
   on the machine, whose speed moves by tens of percent over a run. The train split is prepared first if it is not
   (``lmm-envs data prepare --split train --playing-targets``: a few minutes once, then a check that reads every
   entry).
2. ``num_envs`` envs through the native vector env (``vectorization_mode="vector_entry_point"``) next to
   ``SyncVectorEnv`` over the same number of single envs: aggregate steps per second and their ratio. For
   ScoreFollowing, also the rate at which its vector env can only cut the N observation windows (64 x 163 uint8
   rows of 40 and 80 bytes, gathered as whole rows): the ceiling of that ratio on this machine whatever else a
   step does; ``SyncVectorEnv`` passing on only the infos the native env returns (the metrics of episodes that
   end; merging every env's per-step info dict is a large part of its cost); and both rates with
   ``terminate_on_lost=False``, where random actions no longer end an episode every ~170 steps, which shows what
   resetting episodes and computing their metrics costs.

Actions are sampled from the action space; resets happen when episodes end. Prints figures and ratios.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import lmm_envs  # noqa: F401


def steps_per_second(env_id: str, steps: int, warm_up: bool = True, seed: int = 0, **kwargs) -> float:
    """Random-action steps per second of one env (``warm_up``: a first untimed pass over the same episodes; ``seed``
    picks the episodes and actions)."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    for action in actions if warm_up else ():  # warm-up pass: every piece prepared and cached before timing
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


class EndInfoOnly(gym.Wrapper):
    """Passes on only the info a native vector env returns (the metrics of an episode that ends), so that
    ``SyncVectorEnv`` merges no per-step info dicts: the cost of those, measured apart."""

    def reset(self, **kwargs):
        obs, _ = self.env.reset(**kwargs)
        return obs, {}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        kept = {"episode_metrics": info["episode_metrics"]} if "episode_metrics" in info else {}
        return obs, reward, terminated, truncated, kept


def vector_steps_per_second(env_id: str, mode: str, num_envs: int, steps: int, wrappers=None, warm_up: bool = True,
                            **kwargs) -> float:
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, wrappers=wrappers, **kwargs)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(steps)]
    for action in actions if warm_up else ():  # warm-up pass: pieces prepared before timing
        envs.step(action)
    start = time.perf_counter()
    for action in actions:
        envs.step(action)
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * num_envs / elapsed


def benchmark_pieces() -> list[str]:
    """The 8 test pieces the env benchmarks step through, with every rendering an episode can draw prepared, so
    that timing measures stepping: 4 chorales (multi-part, for Accompaniment) and 4 monophonic tunes."""
    from lmm_envs.music.corpus import piece_ids, piece_info
    from lmm_envs.pieces import performance_seed, prepare_piece

    chorales = piece_ids(split="test", collection="bach")[:4]
    tunes = [p for p in piece_ids(split="test") if piece_info(p).monophonic][:4]
    for pid in chorales + tunes:
        for variant in range(8):
            prepare_piece(pid, 1.0, performance_seed(pid, variant))
    import mir_eval  # noqa: F401  the playing metrics' dependency: loaded before timing, not at a first episode end

    return chorales + tunes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="whole-split, 8-piece and CartPole figures measured in turn this many times (medians printed)")
    ap.add_argument("--no-full-split", action="store_true", help="skip the whole-train-split figures")
    args = ap.parse_args()
    pieces = benchmark_pieces()
    reference = steps_per_second("CartPole-v1", args.steps)
    ids = sorted(k for k in gym.registry if k.startswith("lmm/"))
    print(f"{'env':<28}{'steps/s':>12}{'x CartPole':>12}")
    print(f"{'CartPole-v1':<28}{reference:>12.0f}{1.0:>12.2f}")
    for env_id in ids:
        sps = steps_per_second(env_id, args.steps, pieces=pieces)
        print(f"{env_id:<28}{sps:>12.0f}{sps / reference:>12.2f}")
    if not args.no_full_split:
        full_split(ids, args.steps, args.num_envs, reference, pieces, args.rounds)
    n = args.num_envs
    vector_steps = max(args.steps // n, 50)
    print(f"\n{'env, ' + str(n) + ' envs':<28}{'native/s':>12}{'sync/s':>12}{'native/sync':>12}")
    for env_id in sorted(k for k in gym.registry if k.startswith("lmm/")):
        native = vector_steps_per_second(env_id, "vector_entry_point", n, vector_steps, pieces=pieces)
        sync = vector_steps_per_second(env_id, "sync", n, vector_steps, pieces=pieces)
        print(f"{env_id:<28}{native:>12.0f}{sync:>12.0f}{native / sync:>12.2f}")
        if env_id == "lmm/ScoreFollowing-v0":
            floor = gather_seconds(n, vector_steps, pieces)
            print(f"{'  observation cut alone':<28}{n / floor:>12.0f}{'':>12}{n / floor / sync:>12.2f}"
                  "  (the ceiling of the native/sync ratio with these observations)")
            lean = vector_steps_per_second(env_id, "sync", n, vector_steps, wrappers=[EndInfoOnly], pieces=pieces)
            print(f"{'  sync, no per-step infos':<28}{native:>12.0f}{lean:>12.0f}{native / lean:>12.2f}"
                  "  (SyncVectorEnv merging only what the native env returns: the episode metrics)")
            kept = {"pieces": pieces, "terminate_on_lost": False}  # episodes run to the end: far fewer resets
            native = vector_steps_per_second(env_id, "vector_entry_point", n, vector_steps, **kept)
            sync = vector_steps_per_second(env_id, "sync", n, vector_steps, **kept)
            print(f"{'  never lost (fewer ends)':<28}{native:>12.0f}{sync:>12.0f}{native / sync:>12.2f}"
                  "  (terminate_on_lost=False: what the episodes that end cost)")


def full_split(ids: list[str], steps: int, num_envs: int, reference: float, pieces: list[str],
               rounds: int = 3) -> None:
    """Every env over the whole train split from a warm disk cache, as a training run meets it: single env
    (against CartPole and against its own 8-piece figure) and native vector env; first with the split's scores
    still on disk (a run's first episodes), then with them in memory (the rest of a run: a score is parsed from
    the cache once per process, each of its renderings is read at every reset that draws it). In memory, the
    whole-split, 8-piece and CartPole single-env figures are measured in turn ``rounds`` times (seeds 1, 2, ...:
    other episodes each round) and their medians and the medians of the rounds' ratios printed."""
    from statistics import median

    from lmm_envs.music.corpus import piece_ids
    from lmm_envs.parallel import default_workers
    from lmm_envs.pieces import corpus_score
    from lmm_envs.prepare import prepare_pieces

    split = piece_ids(split="train")
    report = prepare_pieces(split, workers=default_workers(), progress=False,  # reads every entry: a warm cache
                            playing_targets=True)
    print(f"\nwhole train split ({report.pieces} pieces x {report.renderings // report.pieces} renderings; "
          f"{report.built} built now), warm disk cache, no warm-up pass")
    print(f"{'scores on disk: env':<28}{'steps/s':>12}{'x CartPole':>12}{'vector/s':>12}")
    vector_steps = max(steps // num_envs, 50)
    for env_id in ids:
        sps = steps_per_second(env_id, steps, warm_up=False, split="train")
        vec = vector_steps_per_second(env_id, "vector_entry_point", num_envs, vector_steps, warm_up=False,
                                      split="train")
        print(f"{env_id:<28}{sps:>12.0f}{sps / reference:>12.2f}{vec:>12.0f}")
    start = time.perf_counter()
    for pid in split:
        corpus_score(pid)
    print(f"\n(the split's {len(split)} scores read into memory: {time.perf_counter() - start:.2f} s)")
    print(f"scores in memory, medians of {rounds} rounds (whole split, 8 pieces and CartPole measured in turn)")
    print(f"{'env':<28}{'steps/s':>12}{'x CartPole':>12}{'8 pieces/s':>12}{'x 8 pieces':>12}{'vector/s':>12}"
          "  rounds' x 8 pieces")
    for env_id in ids:
        whole, eight, cartpole = [], [], []
        for seed in range(1, rounds + 1):
            whole.append(steps_per_second(env_id, steps, warm_up=False, seed=seed, split="train"))
            eight.append(steps_per_second(env_id, steps, seed=seed, pieces=pieces))
            cartpole.append(steps_per_second("CartPole-v1", steps, seed=seed))
        to_eight = [w / e for w, e in zip(whole, eight, strict=True)]
        to_cartpole = [w / c for w, c in zip(whole, cartpole, strict=True)]
        vec = vector_steps_per_second(env_id, "vector_entry_point", num_envs, vector_steps, warm_up=False,
                                      split="train")
        shown = ", ".join(f"{r:.2f}" for r in to_eight)
        print(f"{env_id:<28}{median(whole):>12.0f}{median(to_cartpole):>12.2f}{median(eight):>12.0f}"
              f"{median(to_eight):>12.2f}{vec:>12.0f}  {shown}")


def gather_seconds(num_envs: int, steps: int, pieces: list[str]) -> float:
    """Seconds per step that the ScoreFollowing vector env spends cutting the N observation windows alone
    (nothing else of a step): a lower bound on its step time, so ``num_envs / this`` bounds its steps/s."""
    import numpy as np

    from lmm_envs.audio.features import FPS

    envs = gym.make_vec("lmm/ScoreFollowing-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        pieces=pieces)
    envs.reset(seed=0)
    base = envs.unwrapped
    active = np.ones(num_envs, dtype=bool)
    # the windows move as they do in stepping (one frame a step, the pointer with it), so memory is read as then
    frames = [np.minimum(k, base._last) for k in range(steps)]
    pointers = [np.minimum(f / FPS, base._end) for f in frames]
    start = time.perf_counter()
    for base._frame, base._pointer in zip(frames, pointers, strict=True):
        base._gather(active)
    elapsed = (time.perf_counter() - start) / steps
    envs.close()
    return elapsed


if __name__ == "__main__":
    main()
