import gymnasium as gym
import numpy as np
import pytest

import lmm_envs  # noqa: F401
from lmm_envs.benchmark.evaluate import run_episode
from lmm_envs.music.corpus import piece_ids, piece_info

MONO = sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:3]
CHORALES = sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:2]


@pytest.mark.parametrize("polyphony,pieces", [("mono", MONO), ("poly", CHORALES)])
def test_transcriber_plays_by_ear_far_better_than_random(polyphony, pieces):
    env = gym.make("lmm/PlayByEar-v0", pieces=pieces, polyphony=polyphony)

    def f1(agent):
        return np.mean([run_episode(env, agent, seed=0, options={"piece": i, "variant": 0})["metrics"]["note_f1"]
                        for i in range(len(pieces))])

    transcribed = f1("transcriber")
    assert transcribed > 0.7
    assert transcribed > f1("random") + 0.5


def test_transcriber_refuses_an_env_without_a_target_recording():
    env = gym.make("lmm/SightReading-v0", pieces=MONO)
    from agents.baselines.transcriber import TranscriberAgent

    with pytest.raises(ValueError, match="PlayByEar"):
        TranscriberAgent(env)
