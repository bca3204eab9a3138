"""Accompany a soloist: the listening accompanist against one that only counts, then write the duet to a WAV.

    python examples/accompany_a_soloist.py
"""

import gymnasium as gym

import lmm_envs  # noqa: F401  (registers the lmm/ ids)
from lmm_envs.audio.wav import write_audio
from lmm_envs.benchmark.evaluate import run_episode

env = gym.make("lmm/Accompaniment-v0", split="test")  # soloist: the top voice of a Bach chorale
for agent in ("metronome", "follower_accompanist", "oracle"):
    metrics = run_episode(env, agent, seed=0, options={"piece": 0, "variant": 0})["metrics"]
    print(f"{agent:22s} mean |asynchrony| {metrics['mean_abs_asynchrony_ms']:7.1f} ms, "
          f"within 100 ms {metrics['within_100ms']:.0%}, missed {metrics['missed']:.0f}")
write_audio("duet.wav", env.unwrapped.episode_audio(), env.unwrapped.synth.sample_rate)  # the oracle's duet
print("wrote duet.wav")
