"""Training speed of the LM presets: optimiser steps per second of LM^V and LM^A at each size, against ``tiny``
measured in the same run, and the time the default 1500 steps take at that rate.

    python benchmarks/lm_presets.py [--steps 40] [--sizes tiny small base large] [--device auto]

Each measurement trains a fresh LM on the first 40 pieces of its unpaired pool (batches of 32 windows, made ahead
on a second thread, as ``python -m agents.pretrain`` trains them) and times ``--steps`` steps after 5 untimed ones.
"""

from __future__ import annotations

import argparse
import time

from agents.lm.data import AUDIO_CONTEXT, SCORE_CONTEXT, audio_frames, pool_ids, score_frames
from agents.lm.model import SIZES, FrameLM, LMConfig, resolve_device
from agents.lm.training import train_frame_lm

DEFAULT_STEPS = 1500


def steps_per_second(sequences, loss: str, context: int, size: str, steps: int, device: str) -> float:
    train_frame_lm(sequences, loss, context, size, steps=5, device=device, progress=False)  # warm up
    start = time.perf_counter()
    train_frame_lm(sequences, loss, context, size, steps=steps, device=device, progress=False)
    return steps / (time.perf_counter() - start)


def parameters(size: str, input_dim: int, context: int) -> int:
    model = FrameLM(LMConfig(input_dim=input_dim, max_len=context + 1, **SIZES[size]))
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    lms = {"LM^V": ([score_frames(i) for i in pool_ids("unpaired_score", 40)], "bce", SCORE_CONTEXT),
           "LM^A": ([audio_frames(i) for i in pool_ids("unpaired_audio", 40)], "mse", AUDIO_CONTEXT)}
    print(f"device {device}; {args.steps} timed steps per measurement")
    for name, (sequences, loss, context) in lms.items():
        reference = None
        for size in args.sizes:
            rate = steps_per_second(sequences, loss, context, size, args.steps, device)
            reference = reference or rate
            print(f"{name} {size:<6} {parameters(size, sequences[0].shape[1], context):>9,d} parameters  "
                  f"{rate:7.1f} steps/s  x{rate / reference:.3f} of {args.sizes[0]}  "
                  f"{DEFAULT_STEPS} steps in {DEFAULT_STEPS / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
