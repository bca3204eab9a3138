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

    def hear(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Key activations at the frame about to be played and the next (``window``: the target's pixels,
        ``(N_BINS, frames)``), and whether each key sounds at each (the agent's keys only)."""
        now = self._activations(window[:, SCORE_LOOKBEHIND])
        ahead = self._activations(window[:, SCORE_LOOKBEHIND + 1])
        return now, ahead, now > self.threshold, ahead > self.threshold

    def act(self, obs, info):
        now, ahead, keys, ahead_on = self.hear(obs["target"][0])
        if self.env.mono:
            strongest = int(np.argmax(np.where(keys, now, -np.inf))) if keys.any() else -1
            keys = np.zeros_like(keys)
            if strongest >= 0:
                keys[strongest] = True
        restrike = self.down & keys & (ahead > self.onset_ratio * np.maximum(now, 1e-9)) & ahead_on
        keys &= ~restrike
        self.down = keys
        full = np.zeros(88, dtype=bool)
        full[self.env.key_low:self.env.key_low + keys.size] = keys
        return self.env.action_for_keys(full)


class LearnedTranscriberAgent(TranscriberAgent):
    """The transcriber with h: A -> M (:class:`agents.lm.transcription.KeyNet`) in place of template matching: a key
    sounds where h's calibrated probability passes 0.5; restrikes are found from its activations as above.

    ``model`` is a saved KeyNet's path (``python -m agents.hear`` writes them) or a KeyNet object.
    """

    def __init__(self, env, model, onset_ratio: float = 1.5):
        from agents.lm.transcription import KeyNet
        from lmm_envs.errors import ConfigError

        super().__init__(env, onset_ratio=onset_ratio)
        if not isinstance(model, KeyNet):
            try:
                model = KeyNet.load(model)
            except FileNotFoundError:
                raise ConfigError(f"no h model at {model}; train one with python -m agents.hear") from None
        self.model = model
        self.context = model.config.context

    def hear(self, window):
        lo, n, c = self.env.key_low, self.env.n_keys, self.context
        columns = window[:, SCORE_LOOKBEHIND - c:SCORE_LOOKBEHIND + 2 + c].T  # the two frames and their neighbours
        activations, probability = self.model.transcribe(columns)
        now, ahead = activations[c:c + 2, lo:lo + n]
        on = probability[c:c + 2, lo:lo + n] > 0.5
        return now, ahead, on[0], on[1]
