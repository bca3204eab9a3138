"""The classic score follower: Dixon's on-line time warping (OLTW) against audio synthesized from the score.

:class:`OnlineTimeWarping` is the algorithm (Dixon, 2005, "Live tracking of musical performances using on-line
time warping"): a cost matrix between the live sequence (rows, arriving one frame at a time) and a reference
(columns, known in advance) is computed incrementally in a band of ``window`` cells, growing by rows or columns
as the best path so far asks (``get_inc``), with at most ``max_run`` steps of one kind in a row (the path
constraint, which bounds the slope to [1/max_run, max_run]). Each row and column is computed with numpy using a
prefix-minimum, so one live frame costs O(window).

:class:`OLTWAgent` plays lmm/ScoreFollowing-v0 (and any env with the same info keys): it synthesizes the score
deadpan with its own synth as the reference, feeds the newest audio frame of each observation to OLTW, and
steers its tempo ratio so that its pointer follows the estimated position. It never reads the ground truth.
Two choices differ from Dixon's start: the path is forced along the diagonal for ``startup`` frames (10, half a
second) instead of a whole window (5 s), so a performer faster than the score's tempo is found at once; and with
discrete actions the pointer is steered by :func:`braking_action` (speed up only while the gap exceeds the
braking distance), so that it does not overshoot, onto a target that runs on at the tempo from the last onset
OLTW heard and waits before the next until OLTW hears it: a score onset is reported when it is played, not when
a steady tempo predicts it (see :class:`OLTWAgent`). Through real performances it holds on: the onsets passed are
the estimate's running maximum, an onset long overdue is passed, and the features match a held spectrum
(:func:`held_spectrum`), so that a player's articulation and pedal count less than which notes sound.
"""

from __future__ import annotations

import numpy as np

from agents.baselines.simple import ratio_action
from lmm_envs.audio.features import FPS
from lmm_envs.pieces import prepare_piece

ROW, COLUMN, BOTH = 0, 1, 2


# Onset weight, chosen on half the Vienna 4x22 performances (harmonic synth, within 300 ms: 2 -> 0.766,
# 4 -> 0.820, 8 -> 0.841, 16 -> 0.849 with a worse worst case) and checked on 40 synthetic test pieces (0.822 ->
# 0.847). The follower accompanist keeps 2 (see agents.baselines.accompanist).
FLUX_WEIGHT = 8.0
SILENCE_FLOOR = 0.05  # the constant component: silence matches silence, and is far from any sounding frame
# The steering that holds on (the defaults: running-max onsets, ``grace``, ``lead``, a longer tempo horizon) was
# chosen on half the Vienna 4x22 performances (harmonic synth, within 300 ms 0.841 -> 0.894; the other half 0.846
# -> 0.906; synthetic test split 0.953 -> 0.952). EARLIER are the settings of the earlier protocol-2 results, before
# this steering and the held spectrum: ``OLTWAgent(env, **EARLIER)``.
EARLIER = dict(hold_on=False, lead=None, grace=None, tempo_horizon=80, sustain=None)
WALL_MARGIN, WALL_DEADBAND = 0.01, 0.005  # where (score seconds before an onset not yet due) the pointer stops
# Decay a frame of the held spectrum (:func:`held_spectrum`; half-life 0.68 s), chosen on half the Vienna 4x22
# performances (harmonic synth, OLTW's own estimate within 300 ms of the truth on all frames: none 0.846, 0.8 0.909,
# 0.9 0.915, 0.95 0.918, 0.97 0.915).
SUSTAIN = 0.95


def held_spectrum(spec: np.ndarray, decay: float = SUSTAIN, before: np.ndarray | None = None) -> np.ndarray:
    """A causal peak hold of ``spec`` (bins, frames): each bin keeps the larger of its value and ``decay`` times its
    held value a frame before (``before``: the held frame before the first one, none if None). A note played
    staccato, or let go before the score's written end, then looks like the held note the deadpan reference
    renders, and a pianist's pedal like a longer decay: articulation, which differs from player to player, counts
    less in the match than which notes sound."""
    spec = np.asarray(spec, dtype=np.float64)
    held = np.empty_like(spec)
    last = np.zeros(spec.shape[0]) if before is None else np.asarray(before, dtype=np.float64).reshape(-1)
    for t in range(spec.shape[1]):
        last = np.maximum(spec[:, t], decay * last)
        held[:, t] = last
    return held


def frame_features(spec: np.ndarray, previous: np.ndarray | None = None,
                   flux_weight: float | None = None, held: np.ndarray | None = None) -> np.ndarray:
    """Per-frame features for the warping cost: the log spectrum (or, if given, ``held``: the
    :func:`held_spectrum` of the same frames), its positive change (weighted by ``flux_weight``, default
    :data:`FLUX_WEIGHT`; always of ``spec`` itself) and a small constant, unit length. The constant makes a silent
    frame a unit vector of its own, so silence matches silence at cost 0 (without it, rests cost 1 against
    everything and the path has no reason to cross them on the diagonal). The change weighs onsets up against
    what sounds on: a held, pedalled or decaying sound differs between a performance and the deadpan reference,
    the moment a note starts much less.

    ``spec`` is (bins, frames); ``previous`` is the frame before the first one (zeros if None).
    """
    flux_weight = FLUX_WEIGHT if flux_weight is None else float(flux_weight)
    spec = np.asarray(spec, dtype=np.float64)
    before = np.zeros((spec.shape[0], 1)) if previous is None else np.asarray(previous, dtype=np.float64).reshape(-1, 1)
    flux = np.maximum(np.diff(np.concatenate([before, spec], axis=1), axis=1), 0.0)
    floor = np.full((1, spec.shape[1]), SILENCE_FLOOR)
    sound = spec if held is None else np.asarray(held, dtype=np.float64).reshape(spec.shape)
    feats = np.concatenate([sound, flux_weight * flux, floor], axis=0).T
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def noise_gate(spec: np.ndarray, gate: float) -> np.ndarray:
    """Spectrogram values under ``gate`` set to 0: what is left of a sound that was cancelled imperfectly (and the
    quiet tails of the reference) counts as silence on both sides of the match."""
    return spec if gate <= 0 else np.where(spec < gate, 0.0, spec)


class OnlineTimeWarping:
    """Dixon's OLTW over unit-length feature vectors, cost ``1 - cosine``."""

    def __init__(self, reference: np.ndarray, window: int = 100, max_run: int = 3, startup: int | None = None):
        self.reference = np.asarray(reference, dtype=np.float64)
        self.startup = int(window) if startup is None else int(startup)  # frames of forced diagonal steps
        self.n_ref = self.reference.shape[0]
        self.window = int(window)
        self.max_run = int(max_run)
        ring = self.window + 1
        self._ring = ring
        self._cost = np.full((ring, ring), np.inf)  # path cost D, indexed [t % ring, j % ring]
        self._live: list[np.ndarray] = []
        self.t = -1
        self.j = -1
        self._previous = None
        self._run = 0
        self._pending = BOTH
        # which reference frames sound: all but the last component (frame_features' constant) are zero in silence
        self.sounding = np.any(self.reference[:, :-1] > 0, axis=1)

    @classmethod
    def for_score(cls, score, synth: str = "harmonic", window: int = 100, max_run: int = 3,
                  gate: float = 0.0, startup: int | None = None, flux_weight: float | None = None,
                  sustain: float | None = None) -> OnlineTimeWarping:
        """OLTW against ``score`` synthesized deadpan with ``synth`` (what a follower that reads the score expects);
        spectrogram values under ``gate`` are set to silence (see :func:`noise_gate`); ``sustain``: the decay of
        :func:`held_spectrum` for the sounding part of the features (None: the spectrum itself)."""
        reference = noise_gate(prepare_piece(score, expressiveness=0.0, seed=0, synth=synth).spectrogram, gate)
        held = None if sustain is None else held_spectrum(reference, sustain)
        oltw = cls(frame_features(reference, flux_weight=flux_weight, held=held), window, max_run, startup)
        oltw.sounding = np.any(reference > 0, axis=0)  # what the score sounds, not what the held spectrum holds
        return oltw

    # --- cost matrix --------------------------------------------------------------------------------------
    def _cells(self, idx_rows, idx_cols):
        return self._cost[idx_rows % self._ring, idx_cols % self._ring]

    @staticmethod
    def _prefix_min(start: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Solve ``D[k] = min(start[k], D[k-1] + local[k])`` for a run of cells with numpy."""
        csum = np.cumsum(local)
        return csum + np.minimum.accumulate(start - csum)

    def _new_row(self) -> None:
        t, j = self.t + 1, self.j
        lo = max(0, j - self.window + 1)
        cols = np.arange(lo, j + 1)
        local = 1.0 - self.reference[lo:j + 1] @ self._live[t]
        self._cost[t % self._ring, :] = np.inf
        if t == 0:
            start = np.full(cols.size, np.inf)
            start[cols == 0] = local[cols == 0]
        else:
            up = self._cells(np.full(cols.size, t - 1), cols)
            diag = np.where(cols > 0, self._cells(np.full(cols.size, t - 1), cols - 1), np.inf)
            start = np.minimum(up + local, diag + 2.0 * local)
        self._cost[t % self._ring, cols % self._ring] = self._prefix_min(start, local)
        self.t = t

    def _new_column(self) -> None:
        t, j = self.t, self.j + 1
        lo = max(0, t - self.window + 1)
        rows = np.arange(lo, t + 1)
        live = np.stack(self._live[lo:t + 1])
        local = 1.0 - live @ self.reference[j]
        self._cost[:, j % self._ring] = np.inf
        if j == 0:
            start = np.full(rows.size, np.inf)
            start[rows == 0] = local[rows == 0]
        else:
            left = self._cells(rows, np.full(rows.size, j - 1))
            diag = np.where(rows > 0, self._cells(rows - 1, np.full(rows.size, j - 1)), np.inf)
            start = np.minimum(left + local, diag + 2.0 * local)
        self._cost[rows % self._ring, j % self._ring] = self._prefix_min(start, local)
        self.j = j

    # --- the path ---------------------------------------------------------------------------------------
    @staticmethod
    def _last_argmin(values: np.ndarray) -> int:
        """The index of the minimum, the latest of equal minima: through a held note or a rest, where many
        reference frames match equally well, the path keeps to the diagonal instead of sticking at the start."""
        return int(np.flatnonzero(values <= values.min() + 1e-9)[-1])  # equal up to rounding

    def _best_in_row(self) -> tuple[int, float]:
        lo = max(0, self.j - self.window + 1)
        cols = np.arange(lo, self.j + 1)
        norm = self._cells(np.full(cols.size, self.t), cols) / (self.t + cols + 2)
        k = self._last_argmin(norm)
        return int(cols[k]), float(norm[k])

    def _best_in_column(self) -> tuple[int, float]:
        lo = max(0, self.t - self.window + 1)
        rows = np.arange(lo, self.t + 1)
        norm = self._cells(rows, np.full(rows.size, self.j)) / (rows + self.j + 2)
        k = self._last_argmin(norm)
        return int(rows[k]), float(norm[k])

    def get_inc(self) -> int:
        if self.t < self.startup:
            return BOTH
        if self._run > self.max_run:
            return ROW if self._previous == COLUMN else COLUMN
        col, row_cost = self._best_in_row()
        row, col_cost = self._best_in_column()
        if col_cost < row_cost and row < self.t:
            return COLUMN  # the reference's current end matches an earlier live frame: reference is behind
        if col < self.j:
            return ROW  # the live frame matches an earlier reference frame: wait for more live input
        return BOTH

    def _count(self, inc: int) -> None:
        self._run = self._run + 1 if inc == self._previous else 1
        if inc != BOTH:
            self._previous = inc

    def push(self, feature: np.ndarray) -> int:
        """Add one live frame; returns the reference frame that best matches it so far."""
        self._live.append(np.asarray(feature, dtype=np.float64))
        if self.t < 0:
            self._cost[:, :] = np.inf
            self._cost[0, 0] = 1.0 - self.reference[0] @ self._live[0]
            self.t, self.j = 0, 0
        else:
            inc = self._pending  # the increment that was waiting for this live frame
            self._new_row()
            if inc == BOTH and self.j + 1 < self.n_ref:
                self._new_column()
            self._count(inc)
        while True:
            inc = self.get_inc() if self.j + 1 < self.n_ref else ROW
            if inc != COLUMN:
                self._pending = inc
                return self.position()
            self._new_column()
            self._count(inc)

    def position(self) -> int:
        return self._best_in_row()[0]


def braking_action(pointer: float, ratio: float, target: float, target_tempo: float, deadband: float = 0.02) -> int:
    """The discrete ScoreFollowing action that steers the pointer onto a target moving at ``target_tempo`` without
    overshoot. The tempo ratio changes by at most ``TEMPO_STEP`` a frame, so the pointer has momentum: it speeds up
    only while the gap is larger than the distance it needs to brake back to the target's tempo, and brakes
    otherwise (a bang-bang controller with a braking distance, all in score seconds)."""
    from lmm_envs.envs.score_following import TEMPO_STEP

    gap = target - pointer
    closing = ratio - target_tempo  # how fast the gap closes (score seconds per second)
    brake = closing * abs(closing) / (2.0 * TEMPO_STEP * FPS)  # gap closed while bringing closing to 0
    rest = gap - brake
    if rest > deadband:
        return 2
    if rest < -deadband:
        return 0
    if closing > TEMPO_STEP / 2:
        return 0
    return 2 if closing < -TEMPO_STEP / 2 else 1


class OLTWAgent:
    """Follows with OLTW and steers the pointer onto its estimate (see the module docstring).

    ``steering`` (discrete actions): ``"events"`` (default) steers with :func:`braking_action` onto a target that
    moves on at the estimated tempo from the last score onset OLTW passed and stands still ``margin`` score
    seconds before the next one until OLTW passes it (or until it is ``grace`` seconds overdue at the tempo), never
    more than ``slack`` behind OLTW's estimate itself, and never past an onset that is not due within ``lead``
    seconds (see :meth:`_event_action`); the tempo is the estimate's slope over ``tempo_horizon`` frames.
    ``"brake"`` steers onto the estimate itself; ``"gain"`` is the earlier proportional controller (tempo
    estimate plus ``gain`` times the gap). ``deadband``: the gap (score seconds) the brake controller lets be;
    ``startup``: frames of forced diagonal steps at the start (Dixon's original is ``window``); ``sustain``: the
    decay of the :func:`held_spectrum` OLTW matches (None: the spectrum itself)."""

    def __init__(self, env, synth: str = "harmonic", window: int = 100, max_run: int = 3, gain: float = 4.0,
                 tempo_horizon: int = 160, steering: str = "events",
                 deadband: float = 0.02, startup: int = 10, margin: float = 0.05, slack: float = 0.0,
                 lead: float | None = 0.25, grace: float | None = 0.15, hold_on: bool = True,
                 sustain: float | None = SUSTAIN):
        self.sustain = sustain
        self.hold_on = hold_on
        self.lead = lead
        self.grace = grace
        self.slack = slack
        self.margin = margin
        self.steering = steering
        self.deadband = deadband
        self.startup = startup
        self.env = env
        self.synth = synth
        self.window = window
        self.max_run = max_run
        self.gain = gain
        self.tempo_horizon = tempo_horizon
        self.action_space = env.action_space

    def reset(self, obs, info) -> None:
        score = self.env.unwrapped.piece.score  # the agent reads the score, never the performance's truth
        self.oltw = OnlineTimeWarping.for_score(score, self.synth, self.window, self.max_run, startup=self.startup,
                                                sustain=self.sustain)
        self._held = None  # the live audio's held spectrum (with ``sustain``)
        self.onsets = score.tempo.beats_to_seconds(score.unique_onsets())
        self._last_onset, self._passed_at, self._top = -2, 0.0, -np.inf
        self.estimates: list[float] = []

    def _event_action(self, estimate: float, tempo: float, info) -> int:
        """Steer onto a target that moves on at the tempo from the last onset OLTW passed and stands still just
        before the next one until OLTW passes it too (the pointer, with its momentum, coasts a little past it:
        waiting for OLTW outright makes every report late), never more than ``slack`` behind the estimate.

        With ``hold_on`` the onsets passed are those of the estimate's running maximum: an estimate that falls
        back does not pull the target back. Once the next onset is ``grace`` seconds overdue at the tempo (OLTW missed it, or the
        performer is faster than OLTW follows), the target stands before the onset after it instead. Until the
        next onset is due within ``lead`` seconds the pointer is also kept from passing it (braking to a stop
        just before it): after a jump of the estimate its momentum would otherwise carry it past an onset the
        performer has not played. ``hold_on`` False and ``lead`` and ``grace`` None turn these off (see
        :data:`EARLIER`)."""
        onsets = self.onsets
        now = len(self.estimates) / FPS
        self._top = max(self._top, estimate)
        top = self._top if self.hold_on else estimate
        k = int(np.searchsorted(onsets, top + 1e-9, side="right")) - 1  # the last onset passed
        if k != self._last_onset:
            self._last_onset, self._passed_at = k, now
        base = onsets[k] if k >= 0 else 0.0
        target, speed = base + (now - self._passed_at) * tempo, tempo
        due = np.inf
        if k + 1 < onsets.size:
            due = self._passed_at + (onsets[k + 1] - base) / tempo
            stand = k + 2 if self.grace is not None and now > due + self.grace and k + 2 < onsets.size else k + 1
            if target > onsets[stand] - self.margin:
                target, speed = onsets[stand] - self.margin, 0.0  # waiting: the target stands still
        if top - self.slack > target:
            target, speed = top - self.slack, tempo
        action = braking_action(info["pointer"], info["tempo_ratio"], target, speed, self.deadband)
        if self.lead is not None and k + 1 < onsets.size and now + self.lead < due:  # the next onset is not due yet: do not pass it
            stop = braking_action(info["pointer"], info["tempo_ratio"], onsets[k + 1] - WALL_MARGIN, 0.0,
                                  WALL_DEADBAND)
            action = min(action, stop)
        return action

    def act(self, obs, info):
        audio = obs["audio"][0].astype(np.float64)  # features are unit length: the pixel scale drops out
        frame = audio[:, -1:]
        if self.sustain is not None:
            self._held = held_spectrum(frame, self.sustain, self._held)[:, 0]
        estimate = self.oltw.push(frame_features(frame, audio[:, -2], held=self._held)[0]) / FPS
        self.estimates.append(estimate)
        h = min(self.tempo_horizon, len(self.estimates) - 1)
        tempo = (estimate - self.estimates[-1 - h]) * FPS / h if h >= 10 else 1.0
        if self.steering == "events" and hasattr(self.action_space, "n"):
            return self._event_action(estimate, float(np.clip(tempo, 0.2, 3.0)), info)
        if self.steering == "brake" and hasattr(self.action_space, "n"):
            return braking_action(info["pointer"], info["tempo_ratio"], estimate, float(np.clip(tempo, 0.0, 3.0)),
                                  self.deadband)
        wanted = float(np.clip(tempo, 0.0, 3.0)) + self.gain * (estimate - info["pointer"])
        return ratio_action(self.action_space, info["tempo_ratio"], wanted)
