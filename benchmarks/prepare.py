"""How many times faster than real time a piece is prepared (render + synth + features), cold and from cache.

    python benchmarks/prepare.py [--pieces 20] [--synth harmonic]

Runs on one core (BLAS threads pinned to 1) in a fresh temporary cache. "cold" includes everything a first
episode on a piece pays; the synth's per-pitch note tables are built on first use and reported separately.
Prints figures; never fails on a time.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=20)
    ap.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
    args = ap.parse_args()
    os.environ["LMM_ENVS_CACHE"] = tempfile.mkdtemp(prefix="lmm-bench-")

    from lmm_envs import pieces
    from lmm_envs.audio.synth import make_synth
    from lmm_envs.music.corpus import piece_ids

    ids = piece_ids(split="test")[:: max(1, 153 // args.pieces)][: args.pieces]
    for pid in ids:  # parse the scores first: score parsing is a one-off, not part of preparing a performance
        pieces.corpus_score(pid)
    synth = make_synth(args.synth)
    t0 = time.perf_counter()
    if args.synth == "harmonic":
        for p in range(21, 109):
            synth.note_table(p)
    tables = time.perf_counter() - t0

    t0 = time.perf_counter()
    prepared = [pieces.prepare_piece(pid, 1.0, seed=1, synth=args.synth) for pid in ids]
    cold = time.perf_counter() - t0
    audio_seconds = sum(p.duration for p in prepared)

    pieces._MEMORY.clear()
    t0 = time.perf_counter()
    for pid in ids:
        pieces.prepare_piece(pid, 1.0, seed=1, synth=args.synth)
    warm = time.perf_counter() - t0

    print(f"{len(ids)} test pieces, {audio_seconds:.0f} s of performance, synth={args.synth}, 1 core")
    if args.synth == "harmonic":
        print(f"note tables (once per process, 88 pitches): {tables:.2f} s")
    print(f"cold  (render + synth + features + write): {audio_seconds / cold:8.0f}x real time  ({cold:.2f} s)")
    print(f"cache (read + verify):                     {audio_seconds / warm:8.0f}x real time  ({warm:.3f} s)")


if __name__ == "__main__":
    main()
