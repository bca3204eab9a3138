"""Shared fixtures: an isolated cache per test session, small scores and files."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ["LMM_ENVS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def fresh_process(monkeypatch):
    """``fresh_process(cache_dir)``: the cache at ``cache_dir`` and nothing in this process's memory yet (no piece,
    no playing target, no unprepared-rendering hint given), as a new process would start."""
    from lmm_envs import pieces
    from lmm_envs.envs import base, sight_reading

    def start(cache) -> None:
        monkeypatch.setenv("LMM_ENVS_CACHE", str(cache))
        monkeypatch.setattr(base, "_UNPREPARED_TOLD", [False])
        monkeypatch.setattr(pieces, "_MEMORY", type(pieces._MEMORY)())
        monkeypatch.setattr(sight_reading, "_TARGETS", type(sight_reading._TARGETS)())

    return start


@pytest.fixture
def small_score():
    from lmm_envs.music.score import Score, TempoMap

    pitches = [60, 62, 64, 65, 67, 65, 64, 62, 60, 67, 72]
    onsets = np.arange(len(pitches), dtype=float)
    return Score(pitch=pitches, onset=onsets, duration=np.ones(len(pitches)), velocity=np.full(len(pitches), 80),
                 part=np.zeros(len(pitches)), tempo=TempoMap.constant(90.0), fermatas=[4.0],
                 measures=np.arange(0, 12, 4.0), title="small")


@pytest.fixture
def midi_file(tmp_path, small_score):
    """A two-part MIDI score file at 90 bpm."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=90.0)
    for part, shift in ((0, 0), (1, -12)):
        inst = pretty_midi.Instrument(program=0, name=f"voice{part}")
        for p, o in zip(small_score.pitch, small_score.onset, strict=True):
            start = o * 60 / 90
            inst.notes.append(pretty_midi.Note(80, int(p) + shift, start, start + 60 / 90 * 0.9))
        pm.instruments.append(inst)
    path = tmp_path / "score.mid"
    pm.write(str(path))
    return path


@pytest.fixture
def ppo_vs_random():
    """``ppo_vs_random(env, steps)``: a small PPO (MLP over flattened observations) trained on ``env``, and the
    mean returns over two seeded episodes of it (deterministic) and of the random agent. PPO trains on one torch
    thread whatever the process had set before (an earlier test in the same process may have set one): the
    result then does not depend on which tests ran first."""

    def run(env, steps: int = 3072) -> tuple[float, float]:
        import gymnasium as gym
        import torch
        from stable_baselines3 import PPO

        from lmm_envs.benchmark.evaluate import run_episode

        env = gym.wrappers.FlattenObservation(env)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, learning_rate=1e-3,
                        policy_kwargs={"net_arch": [64]}, seed=0, device="cpu")
            model.learn(steps)
        finally:
            torch.set_num_threads(threads)
        policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
        trained = float(np.mean([run_episode(env, policy, seed=s)["return"] for s in range(2)]))
        random = float(np.mean([run_episode(env, "random", seed=s)["return"] for s in range(2)]))
        return trained, random

    return run


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs for the whole session (started once: a few seconds), shut down at its end."""
    pytest.importorskip("ray")
    from lmm_envs.parallel import connect_ray

    ray = connect_ray("local", num_cpus=2)
    yield "local"
    ray.shutdown()
