"""lmm/ScoreFollowing-v0: listen to a performance, read the score, and keep a pointer at the place being played."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from lmm_envs.audio.features import FPS
from lmm_envs.envs.base import AUDIO_WINDOW, SCORE_LOOKBEHIND, SCORE_WINDOW, LMMEnv, derived, score_roll
from lmm_envs.envs.rendering import AGENT_COLOUR, TRUTH_COLOUR, compose, mark_column, panel
from lmm_envs.errors import ConfigError
from lmm_envs.metrics import lost_frames, reported_onset_times, score_following_metrics

TEMPO_STEP = 0.1  # change of the tempo ratio per discrete action
MAX_RATIO = 4.0


def action_to_ratio(a: float) -> float:
    """Continuous action in [-1, 1] -> tempo ratio: [-1, 0] maps to [0, 1] and [0, 1] to [1, MAX_RATIO]."""
    return 1.0 + a if a <= 0 else 1.0 + a * (MAX_RATIO - 1.0)


def ratio_to_action(ratio: float) -> float:
    """The inverse of :func:`action_to_ratio` (ratios outside [0, MAX_RATIO] are clipped)."""
    ratio = min(max(ratio, 0.0), MAX_RATIO)
    return ratio - 1.0 if ratio <= 1.0 else (ratio - 1.0) / (MAX_RATIO - 1.0)


class ScoreFollowingEnv(LMMEnv):
    """
    ## Description
    A performance of a piece is played frame by frame (20 frames/s). The agent hears it and reads the score,
    and moves a pointer through the score by setting its tempo: the ratio of score time to performance time.
    The task is to keep the pointer where the performer is, through expressive tempo changes and fermatas.
    This is score following as reinforcement learning (Dorfer et al., 2018; Henkel et al., 2019).

    ## Action Space
    ``action_type="discrete"`` (default): ``Discrete(3)``: 0 slows the tempo ratio down by 0.1, 1 keeps it,
    2 speeds it up by 0.1 (the ratio stays in [0, 4]). ``action_type="continuous"``: ``Box(-1, 1, (1,))``,
    float32; the tempo ratio is set to ``1 + a`` for ``a <= 0`` (0..1) and ``1 + 3a`` above (1..4).

    ## Observation Space
    ``Dict``: ``"audio"``: ``Box(0, 255, (1, 75, 40), uint8)``, the log-frequency spectrogram of the last 40
    frames (2 s), scaled by 40 (``AUDIO_SCALE``); ``"score"``: ``Box(0, 255, (1, 88, 80), uint8)``, the score's
    piano roll (255 at onsets, 128 while a note sounds) from
    1 s before to 3 s after the agent's pointer (column 20), at 20 score frames per second of nominal time;
    ``"tempo"``: ``Box(0, 4, (1,))``, the agent's own current tempo ratio (what it did, as a player knows).

    ## Rewards
    Each step ``max(0, 1 - |pointer - true position| / reward_width)``, positions in nominal score seconds.

    ## Starting State
    A piece is drawn from the split (or ``pieces``) and one of ``performances_per_piece`` seeded expressive
    renderings of it; the pointer is at the start of the score with tempo ratio 1.

    ## Episode End
    Terminated when the performance ends, or (unless ``terminate_on_lost=False``, as under the evaluation
    protocol) when the pointer has been more than ``lost_tolerance`` score seconds off for ``lost_patience``
    consecutive frames (a training option). Truncated by the registered ``max_episode_steps`` (6000, five
    minutes). At the end ``info["episode_metrics"]`` holds the score-following metrics of
    :func:`lmm_envs.metrics.score_following_metrics`; there being lost (``lost_share``, ``tracked_to_end``,
    ``tracking_ratio``) is measured in performance seconds, the same tolerance and patience applied to when the
    performer played the pointer's position.

    ## Arguments
    Those of :class:`~lmm_envs.envs.base.LMMEnv` plus ``action_type`` (``discrete``/``continuous``),
    ``reward_width`` (1.0 s), ``terminate_on_lost`` (True), ``lost_tolerance`` (2.0 s), ``lost_patience`` (20).
    ``reset(options={"piece": id_or_index, "variant": k})`` picks a piece and rendering.

    ## Version History
    * v0: initial version. Since evaluation protocol 2 performances are rendered in the calibrated ``vienna``
      expressive style by default (``expressive_style="gentle"`` gives the earlier ones; the mechanics are unchanged).
    """

    def __init__(
        self,
        action_type: str = "discrete",
        reward_width: float = 1.0,
        terminate_on_lost: bool = True,
        lost_tolerance: float = 2.0,
        lost_patience: int = 20,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if action_type not in ("discrete", "continuous"):
            raise ConfigError(f"action_type must be 'discrete' or 'continuous', got {action_type!r}")
        if not reward_width > 0 or not lost_tolerance > 0 or not (isinstance(lost_patience, int) and lost_patience >= 1):
            raise ConfigError("reward_width and lost_tolerance must be > 0 and lost_patience a positive integer")
        self.action_type = action_type
        self.reward_width = float(reward_width)
        self.terminate_on_lost = bool(terminate_on_lost)
        self.lost_tolerance = float(lost_tolerance)
        self.lost_patience = int(lost_patience)
        self.observation_space = gym.spaces.Dict({
            "audio": self.audio_space(),
            "score": self.score_space(),
            "tempo": gym.spaces.Box(0.0, MAX_RATIO, shape=(1,), dtype=np.float32),
        })
        if action_type == "discrete":
            self.action_space = gym.spaces.Discrete(3)
        else:
            self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    # --- episode ------------------------------------------------------------------------------------------
    def _start(self, piece):
        self._spec = derived(piece, "audio_pixels", lambda: self.pad_audio(piece.spectrogram))
        self._roll = derived(piece.score, "score_roll", lambda: self.pad_roll(score_roll(piece.score)))
        self._truth = piece.score_positions
        self._score_end = float(piece.score.end_seconds)
        self._last_frame = piece.n_frames - 1
        self._frame = 0
        self._pointer = 0.0
        self._ratio = 1.0
        self._off_count = 0
        self._lost_time: float | None = None
        self._trajectory = np.zeros(piece.n_frames, dtype=np.float64)
        return self._observation(), self._info()

    def _advance(self, action):
        if self.action_type == "discrete":
            self._ratio = min(max(self._ratio + (action - 1) * TEMPO_STEP, 0.0), MAX_RATIO)
        else:
            self._ratio = action_to_ratio(float(action[0]))
        self._frame += 1
        self._pointer = min(self._pointer + self._ratio / FPS, self._score_end)
        self._trajectory[self._frame] = self._pointer
        error = abs(self._pointer - self._truth[self._frame])
        reward = max(0.0, 1.0 - error / self.reward_width)
        self._off_count = self._off_count + 1 if error > self.lost_tolerance else 0
        lost = self._off_count >= self.lost_patience
        if lost and self._lost_time is None:
            self._lost_time = (self._frame - self.lost_patience + 1) / FPS
        terminated = self._frame >= self._last_frame or (lost and self.terminate_on_lost)
        return self._observation(), reward, terminated, False, self._info()

    def _observation(self) -> dict[str, np.ndarray]:
        f = self._frame
        c = int(self._pointer * FPS + 0.5)
        return {
            "audio": self._spec[:, :, f:f + AUDIO_WINDOW].copy(),
            "score": self._roll[:, :, c:c + SCORE_WINDOW].copy(),
            "tempo": np.array([self._ratio], dtype=np.float32),
        }

    def _info(self) -> dict:
        truth = float(self._truth[self._frame])
        return {
            "piece_id": self.piece.id,
            "frame": self._frame,
            "time": self._frame / FPS,
            "score_time": truth,
            "pointer": self._pointer,
            "error": self._pointer - truth,
            "tempo_ratio": self._ratio,
            "lost": self._lost_time is not None,
        }

    def episode_metrics(self) -> dict[str, float]:
        """Score-following metrics of the episode so far (onsets not yet due count as not reported).

        Being lost is measured in performance seconds: the pointer's score position is taken to the time the
        performer played it, and the follower is lost while that is more than ``lost_tolerance`` seconds from
        now for ``lost_patience`` frames or more (so a fast performer gets no shorter rope). An episode that
        ended on loss counts the rest of the performance as lost.
        """
        piece = self.piece
        n = self._frame + 1
        times = piece.frame_times[:n]
        reported = reported_onset_times(times, self._trajectory[:n], piece.onset_score_times)
        lost = lost_frames(piece.alignment.performance_at(self._trajectory[:n]) - times, self.lost_tolerance,
                           self.lost_patience)
        lost_time = float(times[np.argmax(lost)]) if lost.any() else None
        ended_lost = self._lost_time is not None and self.terminate_on_lost
        if ended_lost:
            lost_time = self._lost_time if lost_time is None else min(lost_time, self._lost_time)
        lost_count = int(lost.sum()) + (piece.n_frames - n if ended_lost else 0)
        return score_following_metrics(reported, piece.onset_performance_times, lost_time,
                                       lost_share=lost_count / piece.n_frames)

    # --- rendering ----------------------------------------------------------------------------------------
    def render(self):
        if self.render_mode != "rgb_array" or self.piece is None:
            return None
        obs = self._observation()
        audio = panel(obs["audio"][0], 140.0, (3, 8))
        score = panel(obs["score"][0], 255.0, (2, 4))
        # score window columns are score frames; the agent sits at SCORE_LOOKBEHIND, the truth where it is
        truth_col = SCORE_LOOKBEHIND + (self._truth[self._frame] - self._pointer) * FPS
        mark_column(score, (truth_col + 0.5) * 4, TRUTH_COLOUR)
        mark_column(score, (SCORE_LOOKBEHIND + 0.5) * 4, AGENT_COLOUR)
        mark_column(audio, audio.shape[1] - 2, TRUTH_COLOUR)
        return compose([audio, score])
