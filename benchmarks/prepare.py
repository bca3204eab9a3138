"""How many times faster than real time pieces are prepared, per core: what ``lmm-envs data prepare`` pays, cold.

    python benchmarks/prepare.py [--pieces 24] [--variants 8] [--synth harmonic]

Runs on one core (one worker, BLAS threads pinned to 1) in a fresh temporary cache, on ``--pieces`` train pieces
spread over the split (chorales and fiddle tunes as the split mixes them):

1. ``prepare_pieces`` as ``data prepare --split train`` runs it, with every rendering an env draws
   (``--variants``, default the envs' ``performances_per_piece``): cold, score parsing included. This is the figure
   to hold against 1000x real time per core.
2. Where that time goes, per stage, on one more rendering of each piece: parsing the score (once per piece),
   rendering the expressive performance, synthesizing, the spectrogram, writing the cache entry.
3. Reading the prepared renderings back from the cache (what a reset pays once they are prepared).

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
    ap.add_argument("--pieces", type=int, default=24)
    ap.add_argument("--variants", type=int, default=None, help="renderings per piece (default: the envs')")
    ap.add_argument("--synth", default="harmonic", choices=["harmonic", "fluidsynth"])
    args = ap.parse_args()
    os.environ["LMM_ENVS_CACHE"] = tempfile.mkdtemp(prefix="lmm-bench-")

    from lmm_envs import pieces
    from lmm_envs.audio.cache import default_cache, make_key
    from lmm_envs.audio.features import spectrogram
    from lmm_envs.audio.synth import make_synth
    from lmm_envs.music import corpus
    from lmm_envs.music.expressive import render_performance
    from lmm_envs.prepare import prepare_pieces

    variants = args.variants or pieces.PERFORMANCES_PER_PIECE
    train = corpus.piece_ids(split="train")
    ids = train[:: max(1, len(train) // args.pieces)][: args.pieces]
    synth = make_synth(args.synth)
    if args.synth == "harmonic":
        for p in range(21, 109):  # the per-pitch note tables: once per process, not per piece
            synth.note_table(p)

    report = prepare_pieces(ids, variants=variants, synth=args.synth, workers=1, progress=False)
    print(f"{len(ids)} train pieces x {variants} renderings, {report.audio_seconds:.0f} s of performance, "
          f"synth={args.synth}, 1 core")
    print(f"data prepare, cold (parse + render + synth + features + write): {report.realtime_factor:8.0f}x real time"
          f"  ({report.wall_seconds:.1f} s)")

    # where the time goes: one more rendering per piece, stage by stage, scores parsed again from music21
    stages = dict.fromkeys(("parse score (once per piece)", "render performance", "synthesize", "spectrogram",
                            "write cache entry"), 0.0)
    seconds = 0.0
    cache = default_cache()
    for pid in ids:
        t0 = time.perf_counter()
        score = corpus.load_corpus_score(pid)
        t1 = time.perf_counter()
        perf, alignment = render_performance(score, 1.0, seed=10_000 + variants)
        t2 = time.perf_counter()
        audio = synth.render(perf)
        t3 = time.perf_counter()
        spec = spectrogram(audio, synth.sample_rate)
        t4 = time.perf_counter()
        cache.put(make_key("bench", id=pid), dict(spectrogram=spec, onset=perf.onset, a=alignment.score_time))
        t5 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            stages[name] += dt
        seconds += audio.size / synth.sample_rate
    for name, dt in stages.items():
        share = dt / variants if name.startswith("parse") else dt  # a score is parsed once for all its renderings
        print(f"  {name:<30}{seconds / share:10.0f}x real time  ({1000 * share / len(ids):6.1f} ms per rendering)")

    pieces._MEMORY.clear()
    t0 = time.perf_counter()
    for pid in ids:
        for v in range(variants):
            pieces.prepare_piece(pid, 1.0, pieces.performance_seed(pid, v), args.synth)
    warm = time.perf_counter() - t0
    print(f"cache read + verify:                         {report.audio_seconds / warm:8.0f}x real time"
          f"  ({1000 * warm / (len(ids) * variants):.1f} ms per rendering)")


if __name__ == "__main__":
    main()
