"""The PlayByEar baseline: transcribe the target recording frame by frame by spectral template matching.

Each step the agent takes the target's spectrum at the frame it is about to play (column 20 of the ``"target"``
window) and the next frame, and explains each as a non-negative mix of its keyboard's per-key spectra
(non-negative least squares over the keys it controls). Keys whose activation passes ``threshold`` go down
(with ``polyphony="mono"`` only the strongest); a held key whose activation jumps at the next frame (a new strike)
is lifted for this frame so that it can be struck again.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from lmm_envs.audio.keyboard import make_keyboard, to_linear
from lmm_envs.envs.base import AUDIO_SCALE, SCORE_LOOKBEHIND


class TranscriberAgent:
    """Template-matching transcriber for lmm/PlayByEar-v0 (see the module docstring)."""

    def __init__(self, env, threshold: float = 0.3, onset_ratio: float = 1.5):
        self.env = env.unwrapped
        if "target" not in env.observation_space.spaces:
            raise ValueError("the transcriber listens to the 'target' recording: use it on lmm/PlayByEar-v0")
        lo, n = self.env.key_low, self.env.n_keys
        self.basis = make_keyboard(self.env.synth).mean_spectrum()[lo:lo + n].T.astype(np.float64)  # (bins, keys)
        self.threshold = threshold
        self.onset_ratio = onset_ratio

    def reset(self, obs, info) -> None:
        self.down = np.zeros(self.basis.shape[1], dtype=bool)

    def _activations(self, pixels: np.ndarray) -> np.ndarray:
        return nnls(self.basis, to_linear(pixels.astype(np.float32) / AUDIO_SCALE).astype(np.float64))[0]

    def act(self, obs, info):
        window = obs["target"][0]
        now = self._activations(window[:, SCORE_LOOKBEHIND])
        ahead = self._activations(window[:, SCORE_LOOKBEHIND + 1])
        keys = now > self.threshold
        if self.env.mono:
            keys = np.zeros_like(keys)
            if now.max() > self.threshold:
                keys[int(np.argmax(now))] = True
        restrike = self.down & keys & (ahead > self.onset_ratio * np.maximum(now, 1e-9)) & (ahead > self.threshold)
        keys &= ~restrike
        self.down = keys
        full = np.zeros(88, dtype=bool)
        full[self.env.key_low:self.env.key_low + keys.size] = keys
        return self.env.action_for_keys(full)
