"""LMRewardWrapper: reward a motion agent by how likely its own sound is under LM^A (no paired data, no labels).

The closed loop of the challenge: an agent on lmm/SightReading-v0 or lmm/PlayByEar-v0 presses keys, the synth
turns them into audio, and LM^A, trained only on unpaired recordings, scores that audio. LM^A predicts each frame
from the ones before; under a Gaussian with unit variance per bin its log-likelihood is, up to a constant,
``-sum (frame - predicted)^2 / 2``. The wrapper gives ``audio_weight`` times that (per bin, averaged) for the newest
frame of the agent's "audio" window, plus ``env_weight`` times the env's own reward (0 by default: the LM alone).
Silence is likely under any LM, so ``silence_penalty`` is taken off a step in which no key is held.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from agents.lm.model import FrameLM


class LMRewardWrapper(gym.Wrapper):
    """Replace (or mix) a playing env's reward with LM^A's log-likelihood of the agent's own audio."""

    def __init__(self, env: gym.Env, lm_a: FrameLM | str, audio_weight: float = 1.0, env_weight: float = 0.0,
                 silence_penalty: float = 0.05):
        super().__init__(env)
        if "audio" not in env.observation_space.spaces or "held" not in env.observation_space.spaces:
            raise ValueError("LMRewardWrapper needs a playing env (lmm/SightReading-v0 or lmm/PlayByEar-v0)")
        self.lm_a = FrameLM.load(lm_a) if isinstance(lm_a, str) else lm_a.eval()
        self.audio_weight = audio_weight
        self.env_weight = env_weight
        self.silence_penalty = silence_penalty

    @torch.no_grad()
    def log_likelihood(self, audio_window: np.ndarray) -> float:
        """Mean per-bin Gaussian log-likelihood (up to a constant) of the window's last frame given the others."""
        frames = torch.from_numpy(audio_window[0].T.astype(np.float32) / 255.0)[None]  # (1, 40, 75)
        predicted = self.lm_a.predict(self.lm_a.hidden(frames[:, :-1]))[:, -1]
        return float(-0.5 * (frames[:, -1] - predicted).pow(2).mean())

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lm_reward = self.log_likelihood(obs["audio"]) - (self.silence_penalty if not obs["held"].any() else 0.0)
        info["env_reward"] = reward
        info["lm_reward"] = lm_reward
        return obs, self.audio_weight * lm_reward + self.env_weight * reward, terminated, truncated, info


class ScoreRewardWrapper(gym.Wrapper):
    """Reward a SightReading agent by how well what it *hears itself play* agrees with the score it reads.

    h: A -> M (:class:`agents.lm.transcription.KeyNet`, learned by synthesis from unpaired audio and calibrated on
    the K pairs) transcribes the newest frame of the agent's own sound into key-down probabilities ``p``; the score
    window's column for that frame says which keys the score holds, ``s``. The reward is their soft F1,
    ``2 sum(p s) / (sum(p) + sum(s))`` (1 when both are silent). It reads only the agent's observations (its
    sound and the score window, which the env aligns with time), not its actions. Where LM^A's likelihood asks
    whether the sound is music, this asks whether it is *this* music, through the mapping into the score's own
    symbols (keys are pitches), where the LM mappings' states carry too little of a moment to tell (see the
    README's retrieval table).
    ``env_weight`` mixes in the env's own reward (0 by default).
    """

    def __init__(self, env: gym.Env, h, env_weight: float = 0.0):
        super().__init__(env)
        if "score" not in env.observation_space.spaces or "audio" not in env.observation_space.spaces:
            raise ValueError("ScoreRewardWrapper needs an env that shows the score and the agent's sound "
                             "(lmm/SightReading-v0)")
        from agents.lm.transcription import KeyNet

        self.h = KeyNet.load(h) if not isinstance(h, KeyNet) else h.eval()
        self.env_weight = env_weight

    def agreement(self, obs) -> float:
        """Soft F1 between h's hearing of the last frame played and the score's keys at that frame."""
        from lmm_envs.envs.base import SCORE_LOOKBEHIND

        # the audio window's last column is the frame about to be played (silent); the one before is what sounded
        _, heard = self.h.transcribe(obs["audio"][0][:, -3:].T)
        p = heard[1].astype(np.float64)
        s = (obs["score"][0][:, SCORE_LOOKBEHIND - 1] > 0).astype(np.float64)
        total = p.sum() + s.sum()
        return 1.0 if total < 1e-6 else float(2.0 * (p * s).sum() / total)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        score_reward = self.agreement(obs)
        info["env_reward"] = reward
        info["score_reward"] = score_reward
        return obs, score_reward + self.env_weight * reward, terminated, truncated, info
