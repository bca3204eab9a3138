"""What running an extractor's frozen LMs once per state saves, measured against running them every time, in the
same run:

    python benchmarks/frozen_cache.py --lm-dir runs/lm_base [--mapping contrastive] [--paired-budget 8]
                                      [--readout match] [--states 1024] [--ppo-steps 2048]

1. Behaviour cloning (``agents.imitation.behaviour_cloning``, 3 epochs) over ``--states`` oracle demonstrations on
   lmm/ScoreFollowing-v0: the frozen parts encoded once per state (the default) against ``cache_frozen=False``.
   Both start from the same policy; the benchmark prints their losses too, which should agree.
2. PPO (``python -m agents.train``'s ``train``, ``--ppo-steps`` steps, 16 envs) with ``--features-arg
   cache_states=4096`` against none, and (``readout=match``) the audio and score halves cached apart (the
   default) against one cache entry per whole state, as before.

Needs a folder of LMs and mappings from ``python -m agents.pretrain`` and the test and train splits prepared
(``lmm-envs data prepare --split train``); one CPU thread, as the experiments run.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import torch

import lmm_envs  # noqa: F401


def clone_seconds(lm_dir: str, mapping: str, budget: int, readout: str, states: int) -> dict[str, float]:
    from stable_baselines3 import PPO

    from agents.features import LMMExtractor
    from agents.imitation import behaviour_cloning, collect, single_env_factory

    env_id = "lmm/ScoreFollowing-v0"
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": lm_dir, "method": mapping, "paired_budget": budget,
                                            "readout": readout}}
    data = collect([single_env_factory(env_id, split="train")] * 8, states, seed=0, gamma=0.9)
    out = {}
    for cache in (True, False):
        policy = PPO("MultiInputPolicy", gym.make(env_id), policy_kwargs=kwargs, device="cpu", seed=0).policy
        start = time.perf_counter()
        fit = behaviour_cloning(policy, data, epochs=3, cache_frozen=cache)
        out["cached" if cache else "uncached"] = time.perf_counter() - start
        print(f"cloning, frozen parts {'once a state' if cache else 'every minibatch'}: "
              f"{out['cached' if cache else 'uncached']:.1f} s, nll {fit['nll']:.5f}, agreement {fit['agreement']:.3f}")
    return out


def ppo_seconds(lm_dir: str, mapping: str, budget: int, readout: str, steps: int) -> dict[str, float]:
    from agents.features import LMMExtractor, PretrainedParts
    from agents.train import train

    conditions = {"halves": 4096, "whole state": 4096, "none": 0} if readout == "match" else {"whole state": 4096,
                                                                                              "none": 0}
    out = {}
    for name, cache in conditions.items():
        parts = LMMExtractor.cached_parts
        if name == "whole state":  # one entry per state, as the cache was before it split the halves
            LMMExtractor.cached_parts = PretrainedParts.cached_parts
        try:
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                model = train("lmm/ScoreFollowing-v0", features="lmm", paired_budget=budget, steps=steps, seed=0,
                              device="cpu", out=folder, lm_dir=lm_dir, mapping=mapping, progress=False,
                              checkpoint_every=10**9, features_args={"readout": readout, "cache_states": cache})
                out[name] = time.perf_counter() - start
        finally:
            LMMExtractor.cached_parts = parts
        counts = model.policy.features_extractor.cache_counts  # rollouts and PPO's epochs over them alike
        ran = "; ".join(f"{label} encoded {encoded} of {looked} states looked up ({encoded / max(looked, 1):.0%})"
                        for label, (looked, encoded) in zip(("audio", "score") if len(counts) == 2 else ("whole",),
                                                            counts, strict=False))
        print(f"PPO {steps} steps, cache_states={cache} ({name}): {out[name]:.1f} s" + (f"; {ran}" if ran else ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm-dir", required=True)
    ap.add_argument("--mapping", default="contrastive")
    ap.add_argument("--paired-budget", type=int, default=8)
    ap.add_argument("--readout", default="match", choices=("pooled", "match"))
    ap.add_argument("--states", type=int, default=1024)
    ap.add_argument("--ppo-steps", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clone = clone_seconds(args.lm_dir, args.mapping, args.paired_budget, args.readout, args.states)
    ppo = ppo_seconds(args.lm_dir, args.mapping, args.paired_budget, args.readout, args.ppo_steps)
    print(f"cloning {clone['uncached'] / clone['cached']:.2f} x faster with the frozen parts encoded once; "
          f"PPO {ppo['none'] / ppo['whole state']:.2f} x faster with cache_states=4096 (setup included)"
          + (f", {ppo['whole state'] / ppo['halves']:.2f} x faster again with the halves cached apart"
             if "halves" in ppo else ""))


if __name__ == "__main__":
    main()
