"""Closed-loop rewards for the motion tasks, from the modalities' models rather than the env's labels.

:class:`LMRewardWrapper` rewards a motion agent by how likely its own sound is under LM^A (no paired data, no
labels); :class:`ScoreRewardWrapper` by how well h: A -> M hears it agree with the score;
:class:`MappedScoreRewardWrapper` by how well its sound, through LM^A and the K-pair mapping, agrees with LM^V's
reading of the score, or (``contrast``) how much better it agrees with it than with the same score read earlier,
later and transposed.

The closed loop of the challenge: an agent on lmm/SightReading-v0 or lmm/PlayByEar-v0 presses keys, the synth
turns them into audio, and LM^A, trained only on unpaired recordings, scores that audio. LM^A predicts each frame
from the ones before; under a Gaussian with unit variance per bin its log-likelihood is, up to a constant,
``-sum (frame - predicted)^2 / 2``. LMRewardWrapper gives ``audio_weight`` times that (per bin, averaged) for the newest
frame of the agent's "audio" window, plus ``env_weight`` times the env's own reward (0 by default: the LM alone).
Silence is likely under any LM, so ``silence_penalty`` is taken off a step in which no key is held.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnvWrapper

from agents.lm import MAPPED_REWARDS, REWARDS
from agents.lm.model import FrameLM
from lmm_envs.errors import ConfigError


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


class MappedAgreement:
    """How well sounds agree with score moments in LM^V's space: the cosine of the mapped LM^A state of each sound
    (:func:`agents.lm.mapping.audio_states`, through the K-pair :class:`agents.lm.mapping.Mapping`) with LM^V's
    state of the score up to that moment (:func:`agents.lm.mapping.score_states`), both centred as the mapping was
    fitted, in [-1, 1]. The LMs and the mapping are loaded once and shared by every env.

    ``contrast``: :meth:`judge` pays instead how much better the sound fits the score's reading than the same
    score read at other moments and in other keys (:data:`TIME_DISTRACTORS`, :data:`PITCH_DISTRACTORS`), so that a
    sound that fits every reading alike (silence, a wash of keys) earns 0 and one that fits a moved or transposed
    reading better than the score earns less. ``"margin"``: the cosine with the score's reading minus the mean
    cosine with the others, in [-2, 2]; ``"infonce"``: the InfoNCE log-probability of the score's reading among
    them all, at the temperature the contrastive maps are fitted with, plus ``log(1 + distractors)``. The plain
    cosine pays a sound for resembling the score; these pay it for being *this* moment."""

    def __init__(self, lm_dir: str | Path, method: str = "contrastive", paired_budget: int = 8,
                 contrast: str | None = None):
        from agents.lm.mapping import Mapping, mapping_name

        if contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
        folder = Path(lm_dir)
        paths = (folder / "lm_a.pt", folder / "lm_v.pt", folder / mapping_name(method, paired_budget))
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not found; make it with python -m agents.pretrain --out {folder} "
                              f"--paired-budget {paired_budget} --method {method}")
        self.lm_a, self.lm_v = FrameLM.load(paths[0]), FrameLM.load(paths[1])
        self.mapping = Mapping.load(paths[2])
        self.contrast = contrast

    @torch.no_grad()
    def __call__(self, audio_frames: np.ndarray, score_frames: np.ndarray) -> np.ndarray:
        """``audio_frames``: the last :data:`~agents.lm.data.AUDIO_CONTEXT` frames heard ``(N, 40, 75)`` in [0, 1],
        each moment at the last; ``score_frames``: score windows ``(N, 80, 88)`` of onsets with the same moments at
        :data:`~agents.lm.data.SCORE_POSITION`. Returns ``(N,)`` float64 cosines."""
        return self._cosines(audio_frames, score_frames[None])[0]

    @torch.no_grad()
    def _cosines(self, audio_frames: np.ndarray, readings: np.ndarray) -> np.ndarray:
        """Cosines ``(R, N)`` of each sound ``(N, 40, 75)`` with each of its ``R`` score readings ``(R, N, 80, 88)``;
        LM^A reads each sound once."""
        from agents.lm.mapping import audio_states, score_states

        m = self.mapping
        heard = m(audio_states(self.lm_a, audio_frames, pool=m.audio_pool, layer=m.audio_layer)) - m.center
        read = score_states(self.lm_v, readings.reshape(-1, *readings.shape[2:]), pool=m.score_pool,
                            layer=m.score_layer) - m.center
        read = read.view(len(readings), len(audio_frames), -1)
        return torch.nn.functional.cosine_similarity(heard[None], read, dim=-1).double().numpy()

    def judge(self, audio: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The agreement of the frame each SightReading agent just played with the score at that frame, from
        batches of its observations' ``"audio"`` ``(N, 1, 75, 40)`` and ``"score"`` ``(N, C, 88, 80)`` windows.

        The audio window's last column is the frame about to be played (silent), so the frames judged end one
        before it, and the score window is moved one column on with them, the sounded frame at the LMs' place."""
        from agents.lm.data import AUDIO_CONTEXT, SCORE_POSITION
        from lmm_envs.envs.base import ONSET_VALUE, SCORE_LOOKBEHIND

        heard = np.swapaxes(audio[:, 0, :, :-1], 1, 2).astype(np.float32) / 255.0  # (N, 39, 75)
        frames = np.zeros((len(audio), AUDIO_CONTEXT, heard.shape[2]), dtype=np.float32)
        frames[:, AUDIO_CONTEXT - heard.shape[1]:] = heard[:, -AUDIO_CONTEXT:]
        onsets = np.swapaxes(score.max(axis=1) == ONSET_VALUE, 1, 2).astype(np.float32)  # (N, 80, 88)
        shift = SCORE_POSITION - (SCORE_LOOKBEHIND - 1)
        read = np.zeros_like(onsets)
        read[:, shift:] = onsets[:, :onsets.shape[1] - shift]
        if not self.contrast:
            return self(frames, read)
        cosines = self._cosines(frames, distractor_readings(read))  # (1 + D, N), the score's own reading first
        if self.contrast == "margin":
            return cosines[0] - cosines[1:].mean(axis=0)
        log_p = torch.log_softmax(torch.from_numpy(cosines) / CONTRAST_TEMPERATURE, dim=0)[0]
        return (log_p + np.log(len(cosines))).numpy()


CONTRASTS = tuple(MAPPED_REWARDS.values())  # how MappedAgreement.judge weighs the score against its distractors
TIME_DISTRACTORS = (-10, -5, 5, 10)  # frames: the score read 0.5 and 0.25 s earlier and later
PITCH_DISTRACTORS = (-3, -1, 1, 3)  # keys: the score transposed down and up
CONTRAST_TEMPERATURE = 0.1  # the InfoNCE temperature the contrastive maps are fitted with


def distractor_readings(read: np.ndarray) -> np.ndarray:
    """Score windows ``(N, 80, 88)`` (frames x keys) and the same windows moved in time by each of
    :data:`TIME_DISTRACTORS` frames and transposed by each of :data:`PITCH_DISTRACTORS` keys (what moves out is
    dropped, what moves in is silent): ``(1 + D, N, 80, 88)``, the windows themselves first."""
    out = np.zeros((1 + len(TIME_DISTRACTORS) + len(PITCH_DISTRACTORS), *read.shape), dtype=read.dtype)
    out[0] = read
    frames, keys = read.shape[1], read.shape[2]
    for j, d in enumerate(TIME_DISTRACTORS, start=1):  # d > 0: the moment d frames on sits at the place
        if d > 0:
            out[j, :, :frames - d] = read[:, d:]
        else:
            out[j, :, -d:] = read[:, :frames + d]
    for j, k in enumerate(PITCH_DISTRACTORS, start=1 + len(TIME_DISTRACTORS)):
        if k > 0:
            out[j, :, :, k:] = read[:, :, :keys - k]
        else:
            out[j, :, :, :keys + k] = read[:, :, -k:]
    return out


def _check_playing_score_env(space: gym.Space, name: str) -> None:
    spaces = space.spaces if isinstance(space, gym.spaces.Dict) else {}
    if not all(k in spaces for k in ("audio", "score", "held")):
        raise ValueError(f"{name} needs an env that shows the score and the agent's own sound (lmm/SightReading-v0)")


class MappedScoreRewardWrapper(gym.Wrapper):
    """Reward a SightReading agent by how well its own sound, read by LM^A and mapped with the K pairs into LM^V's
    space, agrees with LM^V's reading of the score it plays from (:meth:`MappedAgreement.judge`, a cosine in
    [-1, 1]).

    No alignment labels and no transcription: LM^A (unpaired audio), LM^V (unpaired scores) and the mapping (the
    K pairs) are the whole judge, the challenge's own bridge closing the loop. It reads only the agent's
    observations. ``env_weight`` mixes in the env's own reward (0 by default). For training,
    :class:`MappedScoreRewardVecEnv` judges a batch of envs in one pass of the LMs.
    """

    def __init__(self, env: gym.Env, agreement: MappedAgreement | str, env_weight: float = 0.0, **mapping):
        super().__init__(env)
        _check_playing_score_env(env.observation_space, type(self).__name__)
        self.agreement = agreement if isinstance(agreement, MappedAgreement) else MappedAgreement(agreement, **mapping)
        self.env_weight = env_weight

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        mapped_reward = float(self.agreement.judge(obs["audio"][None], obs["score"][None])[0])
        info["env_reward"] = reward
        info["mapped_reward"] = mapped_reward
        return obs, mapped_reward + self.env_weight * reward, terminated, truncated, info


class MappedScoreRewardVecEnv(VecEnvWrapper):
    """:class:`MappedScoreRewardWrapper` over a vectorised env: every env's step judged in one batch of the LMs
    (an episode's last step on its ``terminal_observation``, not the next episode's first)."""

    def __init__(self, venv, agreement: MappedAgreement, env_weight: float = 0.0):
        super().__init__(venv)
        _check_playing_score_env(venv.observation_space, type(self).__name__)
        self.agreement = agreement
        self.env_weight = env_weight

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        audio, score = obs["audio"].copy(), obs["score"].copy()
        for i in np.flatnonzero(dones):
            last = infos[i].get("terminal_observation")
            if last is not None:
                audio[i], score[i] = last["audio"], last["score"]
        mapped = self.agreement.judge(audio, score)
        for info, env_reward, mapped_reward in zip(infos, rewards, mapped, strict=True):
            info["env_reward"] = float(env_reward)
            info["mapped_reward"] = float(mapped_reward)
        return obs, (mapped + self.env_weight * rewards).astype(np.float32), dones, infos


def closed_loop_judge(reward: str, lm_dir: str | Path, h_model: str | Path, mapping: str = "regression",
                      paired_budget: int = 8):
    """What judges a closed-loop ``reward``, loaded once for every env it judges: LM^A (``"lm"``), h
    (``"score"``) or :class:`MappedAgreement` (``"lm-score"``; ``"lm-margin"`` and ``"lm-contrast"`` with their
    ``contrast``). A missing file is refused in one line
    (:class:`ConfigError`) that names the command making it."""
    if reward in MAPPED_REWARDS:
        return MappedAgreement(lm_dir, mapping, paired_budget, contrast=MAPPED_REWARDS[reward])
    if reward == "lm":
        path, how = Path(lm_dir) / "lm_a.pt", f"python -m agents.pretrain --out {lm_dir}"
    elif reward == "score":
        path, how = Path(h_model), "python -m agents.hear"
    else:
        raise ConfigError(f"no closed-loop reward {reward!r}; they are {', '.join(r for r in REWARDS if r != 'env')}")
    if not path.is_file():
        raise ConfigError(f"{path} not found; make it with {how}")
    if reward == "lm":
        return FrameLM.load(path)
    from agents.lm.transcription import KeyNet

    return KeyNet.load(path)


def closed_loop_env(env: gym.Env, reward: str, judge) -> gym.Wrapper:
    """``env`` rewarded by ``reward``'s wrapper with ``judge`` (:func:`closed_loop_judge`); an env the reward
    cannot judge is refused in one line (:class:`ConfigError`)."""
    wrapper = MappedScoreRewardWrapper if reward in MAPPED_REWARDS else {"lm": LMRewardWrapper,
                                                                         "score": ScoreRewardWrapper}[reward]
    try:
        return wrapper(env, judge)
    except ValueError as e:
        raise ConfigError(str(e)) from None
