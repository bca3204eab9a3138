"""lmm/Accompaniment-v0: hear a soloist, read the full score, and play the accompaniment with them, in time."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from lmm_envs.audio.features import FPS, N_BINS
from lmm_envs.audio.keyboard import (
    VELOCITY_LEVELS,
    make_keyboard,
    to_linear,
    velocity_scale,
)
from lmm_envs.envs.base import (
    AUDIO_WINDOW,
    SCORE_LOOKBEHIND,
    SCORE_WINDOW,
    LMMEnv,
    audio_pixels,
    derived,
    score_roll,
)
from lmm_envs.envs.rendering import AGENT_COLOUR, TRUTH_COLOUR, compose, mark_column, panel
from lmm_envs.errors import ConfigError
from lmm_envs.metrics import accompaniment_metrics
from lmm_envs.music import corpus
from lmm_envs.music.expressive import ARTICULATION
from lmm_envs.music.score import Performance, Score
from lmm_envs.pieces import Piece, corpus_score, part_spectrogram

WAIT, PLAY = 0, 1
MISS_PENALTY = 1.0  # reward lost for an event not played in time
EXTRA_PENALTY = 1.0  # reward lost for a play after the last event


def solo_part_index(score: Score, solo_part: int | str) -> int:
    """Which part is the soloist: an index, a part name, or ``"top"`` (highest mean pitch)/``"bottom"``."""
    if isinstance(solo_part, (int, np.integer)) and not isinstance(solo_part, bool):
        if not 0 <= int(solo_part) < score.n_parts:
            raise ConfigError(f"solo_part {solo_part} is outside the score's parts 0..{score.n_parts - 1}")
        return int(solo_part)
    if solo_part in ("top", "bottom"):
        means = np.array([score.pitch[score.part == p].mean() if np.any(score.part == p) else np.nan
                          for p in range(score.n_parts)])
        return int(np.nanargmax(means) if solo_part == "top" else np.nanargmin(means))
    if solo_part in score.part_names:
        return score.part_names.index(solo_part)
    raise ConfigError(f"solo_part must be 'top', 'bottom', a part index or a part name "
                      f"({', '.join(score.part_names)}), got {solo_part!r}")


def accompaniment_events(score: Score, solo: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The accompaniment as events: the distinct onsets (beats) of the parts other than ``solo``, and the score
    note indices that start at each (what an agent reading the score knows it has to play)."""
    acc = np.flatnonzero(score.part != solo)
    beats = np.unique(score.onset[acc])
    which = np.searchsorted(beats, score.onset[acc])
    return beats, [acc[which == i] for i in range(beats.size)]


class AccompanimentEvents:
    """The accompaniment part of a piece as events (distinct onsets), with the soloist's timing for each."""

    def __init__(self, piece: Piece, solo: int):
        score, perf = piece.score, piece.performance
        self.score_beats, self.notes = accompaniment_events(score, solo)
        self.score_times = score.tempo.beats_to_seconds(self.score_beats)  # nominal seconds
        self.target_times = piece.alignment.performance_at(self.score_times)  # where the soloist's timing puts it
        # each note (indexed as in the score) sounds for its notated length at the local tempo of this performance
        on_t = piece.alignment.performance_at(score.tempo.beats_to_seconds(score.onset))
        off_t = piece.alignment.performance_at(score.tempo.beats_to_seconds(
            score.onset + score.duration * ARTICULATION))
        self.held_frames = np.maximum(np.round((off_t - on_t) * FPS), 1).astype(np.int64)
        self.velocities = perf.velocity.astype(np.float64) if perf is not None else score.velocity.astype(np.float64)
        self.target_velocity = np.array([self.velocities[n].mean() for n in self.notes])

    def __len__(self) -> int:
        return int(self.score_beats.size)


class AccompanimentEnv(LMMEnv):
    """
    ## Description
    A soloist performs one part of a piece (by default the top voice of a Bach chorale) with seeded expressive
    timing; the agent hears the soloist and its own playing mixed, reads the full score, and plays the other parts
    (the accompaniment) event by event: each step it waits or plays the accompaniment's next event (the chord of
    all accompaniment notes that start together). What it plays is synthesized into the mix it hears. The task
    is to play each event when the soloist's timing puts it.

    ## Action Space
    ``Discrete(2)``: 0 waits, 1 plays the next event now. With ``dynamics=True``: ``Discrete(6)``: 0 waits,
    ``1 + l`` plays the next event at velocity level ``l`` of (40, 60, 80, 100, 120).

    ## Observation Space
    ``Dict``: ``"audio"``: ``Box(0, 255, (1, 75, 40), uint8)``, the spectrogram of the mix (soloist plus the
    agent's accompaniment) over the last 40 frames; ``"score"``: ``Box(0, 255, (2, 88, 80), uint8)``, the score's
    piano roll at nominal tempo (channel 0 the solo part, channel 1 the accompaniment) from 1 s before to 3 s
    after the next event to play (column 20); ``"progress"``: ``Box(0, 1, (1,))``, the share of events done.

    ## Rewards
    Playing an event earns ``1 - |asynchrony| / tolerance``, at least -1 (so early playing is penalised by how
    early it is; with dynamics a positive reward is multiplied by
    ``0.5 + 0.5 * max(0, 1 - |velocity - the performance's velocity| / 64)``); an event not played by
    ``tolerance`` after its time is missed, costs 1, and the next event becomes due; a play after the last event
    is an extra and costs 1. Waiting earns 0.

    ## Starting State
    A multi-part piece and one of ``performances_per_piece`` seeded renderings of it; the first event is due.

    ## Episode End
    Terminated when the soloist has finished and every event has been played or missed; truncated by
    ``max_episode_steps``. At the end ``info["episode_metrics"]`` holds the metrics of
    :func:`lmm_envs.metrics.accompaniment_metrics` (mean absolute asynchrony, share within 50/100 ms, missed,
    extra, tempo correlation) and, with dynamics, the mean velocity error.

    ## Arguments
    Those of :class:`~lmm_envs.envs.base.LMMEnv` plus ``solo_part`` (``"top"`` (default), ``"bottom"``, a part
    index or name), ``dynamics`` (False) and ``tolerance`` (0.3 s). Only pieces with at least two parts are
    used; a piece given with a real (recorded) performance is not, since its soloist cannot be heard alone.
    :meth:`episode_audio` returns the whole episode, soloist and accompaniment, as audio.

    ## Version History
    * v0: initial version. Since evaluation protocol 2 performances are rendered in the calibrated ``vienna``
      expressive style by default (``expressive_style="gentle"`` gives the earlier ones; the mechanics are unchanged).
    """

    def __init__(self, solo_part: int | str = "top", dynamics: bool = False, tolerance: float = 0.3, **kwargs):
        if not isinstance(dynamics, bool):
            raise ConfigError(f"dynamics must be True or False, got {dynamics!r}")
        if not isinstance(tolerance, (int, float)) or not 0.05 <= tolerance <= 2.0:
            raise ConfigError(f"tolerance must be between 0.05 and 2 seconds, got {tolerance!r}")
        if not isinstance(solo_part, (int, str, np.integer)) or isinstance(solo_part, bool):
            raise ConfigError(f"solo_part must be 'top', 'bottom', a part index or a part name, got {solo_part!r}")
        self.solo_part = solo_part
        self.dynamics = dynamics
        self.tolerance = float(tolerance)
        super().__init__(**kwargs)
        self.keyboard = make_keyboard(self.synth)
        self.action_space = gym.spaces.Discrete(1 + VELOCITY_LEVELS.size if dynamics else 2)
        self.observation_space = gym.spaces.Dict({
            "audio": self.audio_space(),
            "score": gym.spaces.Box(0, 255, shape=(2, 88, SCORE_WINDOW), dtype=np.uint8),
            "progress": gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
        })

    def _accepts(self, source) -> bool:
        if isinstance(source, Piece):
            if source.performance is None or source.performance.n_notes != source.score.n_notes:
                return False
            score = source.score
        elif isinstance(source, str):
            if corpus.piece_info(source).n_parts < 2:
                return False
            if isinstance(self.solo_part, str) and self.solo_part in ("top", "bottom"):
                return True
            score = corpus_score(source)
        else:
            score = source
        if len(np.unique(score.part)) < 2:
            return False
        try:
            solo = solo_part_index(score, self.solo_part)
        except ConfigError:
            return False
        return bool(np.any(score.part == solo)) and bool(np.any(score.part != solo))

    def _extras_prepared(self) -> bool:
        return self.solo_part == "top"  # the soloist's part data prepare --playing-targets renders

    def _why_unsuited(self, sources: list) -> str:
        parts = [corpus.piece_info(s).n_parts if isinstance(s, str) else
                 len(np.unique((s.score if isinstance(s, Piece) else s).part)) for s in sources]
        if max(parts) < 2:
            return "the pieces have one part each and accompaniment needs two or more; choose other pieces"
        if isinstance(self.solo_part, (int, np.integer)):
            return (f"solo_part {self.solo_part} is not a part of any of them (their parts are numbered "
                    f"0..{max(parts) - 1}); choose another solo_part")
        return f"solo_part {self.solo_part!r} names no part of theirs; choose 'top', 'bottom', a part index or name"

    # --- episode ------------------------------------------------------------------------------------------
    def _start(self, piece: Piece):
        score = piece.score
        self._solo = solo_part_index(score, self.solo_part)
        self._events = ev = AccompanimentEvents(piece, self._solo)
        name = f"accompaniment-solo{self._solo}"  # what depends only on the piece is built once per piece
        self._solo_linear = derived(piece, f"{name}-tolerance{self.tolerance}",
                                    lambda: self._solo_frames(piece, ev))
        self._n_frames = self._solo_linear.shape[1] - 80
        self._acc_linear = np.zeros_like(self._solo_linear)
        self._pixels = derived(piece, f"{name}-tolerance{self.tolerance}-pixels",
                               lambda: self.pad_audio(np.log1p(self._solo_linear))).copy()
        self._roll = derived(score, f"{name}-roll", lambda: self._score_rolls(score, self._solo))
        self._n_events = len(ev)
        self._end_column = int(score.end_seconds * FPS)  # where the score window stops once every event is done
        self._frame = 0
        self._next = 0
        self._n_played = 0
        self._played_times = np.full(len(ev), np.nan)
        self._played_velocity = np.full(len(ev), np.nan)
        self._extra = 0
        self._played_notes: list[tuple[int, float, float, float]] = []  # pitch, onset, offset, velocity
        return self._observation(), self._info()

    def _solo_frames(self, piece: Piece, ev: AccompanimentEvents) -> np.ndarray:
        """The soloist's frames in linear amplitude, long enough for the last event's tolerance (and 80 more)."""
        solo_spec = part_spectrogram(piece, [self._solo], self.synth)
        last_due = float(ev.target_times[-1]) + self.tolerance
        n = max(solo_spec.shape[1], int(np.ceil(last_due * FPS)) + 2)
        out = np.zeros((N_BINS, n + 80), dtype=np.float32)
        out[:, :solo_spec.shape[1]] = to_linear(solo_spec)
        return out

    def _score_rolls(self, score: Score, solo: int) -> np.ndarray:
        """The padded score rolls, channel 0 the solo part, channel 1 the accompaniment, ``(2, 88, frames)``."""
        others = [p for p in range(score.n_parts) if p != solo and np.any(score.part == p)]
        rolls = [score_roll(score.select_parts([solo])), score_roll(score.select_parts(others))]
        width = max(r.shape[1] for r in rolls)
        return np.concatenate([self.pad_roll(np.pad(r, ((0, 0), (0, width - r.shape[1])))) for r in rolls])

    def _sound(self, event: int, velocity: float | None, frame: int) -> None:
        """Add the event's notes, struck at ``frame``, to the accompaniment the agent hears (and the audio log)."""
        ev = self._events
        start = frame
        stop = start
        t = frame / FPS
        for note in ev.notes[event]:
            pitch = int(self.piece.score.pitch[note])
            v = ev.velocities[note] if velocity is None else velocity
            held = int(ev.held_frames[note])
            end = self.keyboard.add_note(self._acc_linear, start, pitch, held, float(velocity_scale(v)))
            stop = max(stop, end)
            self._played_notes.append((pitch, t, t + held / FPS, float(v)))
        mixed = audio_pixels(np.log1p(self._solo_linear[:, start:stop] + self._acc_linear[:, start:stop]))
        self._pixels[0, :, start + AUDIO_WINDOW - 1:stop + AUDIO_WINDOW - 1] = mixed

    def _advance(self, action):
        ev = self._events
        f = self._frame
        now = f / FPS
        reward = 0.0
        if action != WAIT:
            velocity = float(VELOCITY_LEVELS[action - 1]) if self.dynamics else None
            i = self._next
            if i < self._n_events:
                asynchrony = now - ev.target_times[i]
                reward = max(-1.0, 1.0 - abs(asynchrony) / self.tolerance)
                if self.dynamics and reward > 0:
                    reward *= 0.5 + 0.5 * max(0.0, 1.0 - abs(velocity - ev.target_velocity[i]) / 64.0)
                if self.dynamics:
                    self._played_velocity[i] = velocity
                self._played_times[i] = now
                self._n_played += 1
                self._sound(i, velocity, f)
                self._next = i + 1
            else:
                self._extra += 1  # nothing left to play
                reward = -EXTRA_PENALTY
        self._frame = f + 1
        later = self._frame / FPS
        while self._next < self._n_events and later > ev.target_times[self._next] + self.tolerance:
            self._next += 1  # missed: the soloist has moved on
            reward -= MISS_PENALTY
        terminated = self._frame >= self._n_frames - 1 and self._next >= self._n_events
        return self._observation(), float(reward), terminated, False, self._info()

    def oracle_action(self) -> int:
        """Play the next event at the frame nearest its time (at the performance's velocity with dynamics)."""
        ev, i = self._events, self._next
        if i >= len(ev) or ev.target_times[i] >= (self._frame + 0.5) / FPS:
            return WAIT
        if not self.dynamics:
            return PLAY
        return 1 + int(np.argmin(np.abs(VELOCITY_LEVELS - ev.target_velocity[i])))

    def _observation(self) -> dict[str, np.ndarray]:
        f, i = self._frame, self._next
        c = int(self._events.score_times[i] * FPS + 0.5) if i < self._n_events else self._end_column
        c = min(c, self._roll.shape[2] - SCORE_WINDOW)
        return {
            "audio": self._pixels[:, :, f:f + AUDIO_WINDOW].copy(),
            "score": self._roll[:, :, c:c + SCORE_WINDOW].copy(),
            "progress": np.array([i / self._n_events], dtype=np.float32),
        }

    def _info(self) -> dict:
        ev, i = self._events, self._next
        due = i < self._n_events
        return {
            "piece_id": self.piece.id,
            "frame": self._frame,
            "time": self._frame / FPS,
            "solo_part": self._solo,
            "next_event": i,
            "n_events": self._n_events,
            "event_score_time": float(ev.score_times[i]) if due else float("nan"),  # nominal seconds (the score)
            "event_time": float(ev.target_times[i]) if due else float("nan"),  # ground truth: the soloist's timing
            "played": self._n_played,
            "extra": self._extra,
        }

    def episode_metrics(self) -> dict[str, float]:
        """Accompaniment metrics of the events resolved so far (events not yet due are left out)."""
        ev = self._events
        n = max(self._next, 1)
        out = accompaniment_metrics(self._played_times[:n], ev.target_times[:n], ev.score_times[:n], self._extra)
        if self.dynamics:
            v = self._played_velocity[:n]
            have = np.isfinite(v)
            out["mean_abs_velocity_error"] = (float(np.mean(np.abs(v[have] - ev.target_velocity[:n][have])))
                                              if have.any() else float("nan"))
        return out

    # --- listening to an episode --------------------------------------------------------------------------
    def episode_performance(self) -> Performance:
        """The episode so far as a performance: the soloist's notes plus what the agent played (part 1)."""
        solo = self.piece.performance.select_parts([self._solo])
        acc = np.array(self._played_notes, dtype=np.float64).reshape(-1, 4)
        return Performance(
            np.concatenate([solo.pitch, acc[:, 0]]).astype(np.int64),
            np.concatenate([solo.onset, acc[:, 1]]), np.concatenate([solo.offset, acc[:, 2]]),
            np.concatenate([solo.velocity, acc[:, 3]]),
            np.concatenate([np.zeros(solo.n_notes, dtype=np.int64), np.ones(acc.shape[0], dtype=np.int64)]),
        )

    def episode_audio(self) -> np.ndarray:
        """The episode so far, soloist and accompaniment, rendered by the env's synth (float32 mono at
        ``self.synth.sample_rate``); write it with :func:`lmm_envs.audio.wav.write_audio` to listen."""
        if self.piece is None:
            raise ConfigError("no episode yet: call reset() and play before asking for its audio")
        return self.synth.render(self.episode_performance())

    # --- rendering ----------------------------------------------------------------------------------------
    def render(self):
        if self.render_mode != "rgb_array" or self.piece is None:
            return None
        obs = self._observation()
        audio = panel(obs["audio"][0], 140.0, (3, 8))
        score = panel(np.maximum(obs["score"][0], obs["score"][1] // 2), 255.0, (2, 4))
        mark_column(score, (SCORE_LOOKBEHIND + 0.5) * 4, AGENT_COLOUR)
        ev, i = self._events, self._next
        if i < len(ev):  # where the soloist's timing puts the next event, relative to now
            ahead = (ev.target_times[i] - self._frame / FPS) * FPS
            mark_column(audio, audio.shape[1] - 2 + ahead * 8, TRUTH_COLOUR)
        return compose([audio, score])
