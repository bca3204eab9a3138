"""lmm/SightReading-v0 and lmm/PlayByEar-v0: the motion tasks. The agent presses keys, hears what it plays, and is
scored against a target performance; one reads the score ahead, the other hears the target recording ahead."""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property, lru_cache

import gymnasium as gym
import numpy as np

from lmm_envs.audio.cache import default_cache, make_key
from lmm_envs.audio.features import FPS, N_BINS
from lmm_envs.audio.keyboard import (
    N_KEYS,
    PITCH_LOW,
    REF_VELOCITY,
    RELEASE_FRAMES,
    VELOCITY_LEVELS,
    keyboard_key,
    make_keyboard,
    to_log,
)
from lmm_envs.envs.base import AUDIO_SCALE, AUDIO_WINDOW, SCORE_WINDOW, LMMEnv, audio_pixels
from lmm_envs.envs.rendering import AGENT_COLOUR, TRUTH_COLOUR, compose, mark_column, panel
from lmm_envs.errors import ConfigError
from lmm_envs.metrics import key_notes, playing_metrics
from lmm_envs.music import corpus
from lmm_envs.music.score import Performance, Score
from lmm_envs.pieces import Piece, count_extra_built

_TARGETS: OrderedDict[tuple, PlayingTarget] = OrderedDict()
_TARGETS_SIZE = 32


class PlayingTarget:
    """What the agent should play: key states per frame, strike velocities, and how that sounds (log spectrum)."""

    def __init__(self, keys: np.ndarray, velocities: np.ndarray, spectrum: np.ndarray):
        self.keys = keys  # (n_frames, N_KEYS) bool
        self.velocities = velocities  # (n_frames, N_KEYS) float32, at the frame a key goes down
        self.spectrum = spectrum  # (N_BINS, n_frames) float32 log spectrum

    @property
    def n_frames(self) -> int:
        return int(self.keys.shape[0])

    @cached_property
    def frame_totals(self) -> list[float]:
        """Each frame's spectrum summed (as ``spectrum[:, f].sum()`` gives it): the audio reward's target part."""
        return np.ascontiguousarray(self.spectrum.T).sum(axis=1).astype(np.float64).tolist()

    @cached_property
    def frame_key_counts(self) -> list[int]:
        """How many keys each frame holds: the symbolic reward's target part."""
        return np.count_nonzero(self.keys, axis=1).tolist()

    @cached_property
    def score_pixels(self) -> np.ndarray:
        """The keys as a padded piano roll (255 where a key goes down, 128 while held): the "score" windows."""
        roll = np.where(self.keys, 128, 0).astype(np.uint8)
        roll[1:][self.keys[1:] & ~self.keys[:-1]] = 255
        roll[0][self.keys[0]] = 255
        return LMMEnv.pad_roll(roll.T)

    @cached_property
    def spectrum_pixels(self) -> np.ndarray:
        """The target's sound as padded pixels: the "target" windows."""
        return LMMEnv.pad_roll(audio_pixels(self.spectrum))


def performance_keys(performance: Performance, mono: bool, velocity: bool) -> tuple[np.ndarray, np.ndarray]:
    """Key states at the control rate (frames) that play ``performance``, and the velocity of each strike.

    Onsets and offsets are rounded to frames (every note sounds at least one frame). A repeated key is given one
    frame up before it is struck again (two strikes one frame apart merge into one note). With ``mono``, a note
    ends when the next one begins and of notes struck together only the highest is kept. Without ``velocity``
    every note is struck at :data:`~lmm_envs.audio.keyboard.REF_VELOCITY`, otherwise at the nearest of
    :data:`VELOCITY_LEVELS`.
    """
    key = np.clip(performance.pitch.astype(np.int64) - PITCH_LOW, 0, N_KEYS - 1)
    on = np.round(performance.onset * FPS).astype(np.int64)
    off = np.maximum(np.round(performance.offset * FPS).astype(np.int64), on + 1)
    if velocity:
        vel = VELOCITY_LEVELS[np.argmin(np.abs(performance.velocity[:, None] - VELOCITY_LEVELS[None]), axis=1)]
    else:
        vel = np.full(key.size, REF_VELOCITY)
    order = np.lexsort((-key, on))
    key, on, off, vel = key[order], on[order], off[order], vel[order]
    if mono:
        first = np.concatenate([[True], on[1:] != on[:-1]])  # the highest of notes struck together
        key, on, off, vel = key[first], on[first], off[first], vel[first]
        off = np.minimum(off, np.concatenate([on[1:], [off[-1]]]))
    n_frames = int(off.max()) + RELEASE_FRAMES + 1
    keys = np.zeros((n_frames, N_KEYS), dtype=bool)
    velocities = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    for k in np.unique(key):
        for a, b, v in _strikes(on[key == k], off[key == k], vel[key == k]):
            keys[a:b, k] = True
            velocities[a, k] = v
    return keys, velocities


def _strikes(on: np.ndarray, off: np.ndarray, vel: np.ndarray) -> list[tuple[int, int, float]]:
    """One key's notes as (down, up, velocity) frame intervals with at least one frame up between strikes."""
    out: list[list] = []
    for i in np.argsort(on, kind="stable"):
        a, b, v = int(on[i]), int(off[i]), float(vel[i])
        if out:
            prev = out[-1]
            if a <= prev[0] + 1:  # struck together, or a frame apart: no room to lift the key, one note
                prev[1] = max(prev[1], b)
                continue
            if a <= prev[1]:  # still down (or just lifted) when struck again: lift it the frame before
                prev[1] = a - 1
        out.append([a, b, v])
    return [tuple(x) for x in out]


def playing_target(piece: Piece, mono: bool, velocity: bool, synth) -> PlayingTarget:
    """The target of a piece's performance (memoised per piece, rendering and task settings). Its sound, played
    frame by frame through the keyboard (about 10 ms a rendering), is kept in the disk cache as well, so that it
    is built once (``lmm-envs data prepare --playing-targets`` builds them ahead)."""
    key = (piece.id, piece.meta.get("seed"), piece.meta.get("expressiveness"), piece.performance.content_hash(),
           mono, velocity, synth.cache_key())
    hit = _TARGETS.get(key)
    if hit is None:
        keys, velocities = performance_keys(piece.performance, mono, velocity)

        def build() -> dict[str, np.ndarray]:
            count_extra_built()
            return {"spectrum": to_log(make_keyboard(synth).render_keys(keys, velocities))}

        stored = default_cache().get_or_create(
            make_key("playing-target", performance=key[3], mono=bool(mono), velocity=bool(velocity),
                     keyboard=keyboard_key(synth)), build, required=("spectrum",))
        hit = PlayingTarget(keys, velocities, stored["spectrum"])
        _TARGETS[key] = hit
        while len(_TARGETS) > _TARGETS_SIZE:
            _TARGETS.popitem(last=False)
    else:
        _TARGETS.move_to_end(key)
    return hit


@lru_cache(maxsize=2)
def corpus_key_range(mono: bool) -> tuple[int, int]:
    """Lowest and highest pitch over the whole bundled corpus (its monophonic pieces with ``mono``): the keys of
    the motion tasks, the same for every split so that an agent trained on one is evaluated on another."""
    infos = [corpus.piece_info(p) for p in corpus.piece_ids()]
    infos = [i for i in infos if i.monophonic] if mono else infos
    return min(i.lowest for i in infos), max(i.highest for i in infos)


def _pitch_range(source) -> tuple[int, int]:
    if isinstance(source, str):
        info = corpus.piece_info(source)
        return info.lowest, info.highest
    score = source.score if isinstance(source, Piece) else source
    return int(score.pitch.min()), int(score.pitch.max())


class PlayingEnv(LMMEnv):
    """What SightReading and PlayByEar share: keys as actions, the keyboard's sound, rewards and metrics."""

    def __init__(self, polyphony: str = "mono", velocity: bool = False, reward: str = "audio",
                 key_range: tuple[int, int] | None = None, **kwargs):
        if polyphony not in ("mono", "poly"):
            raise ConfigError(f"polyphony must be 'mono' or 'poly', got {polyphony!r}")
        if reward not in ("audio", "symbolic"):
            raise ConfigError(f"reward must be 'audio' or 'symbolic', got {reward!r}")
        if not isinstance(velocity, bool):
            raise ConfigError(f"velocity must be True or False, got {velocity!r}")
        self.polyphony = polyphony
        self.mono = polyphony == "mono"
        self.velocity = velocity
        self.reward_type = reward
        super().__init__(**kwargs)
        ranges = np.array([_pitch_range(s) for s in self.sources])
        need_lo, need_hi = int(ranges[:, 0].min()), int(ranges[:, 1].max())
        if key_range is None:
            lo, hi = corpus_key_range(self.mono)
            lo, hi = min(lo, need_lo), max(hi, need_hi)
        else:
            lo, hi = (int(k) for k in key_range)
            if not (PITCH_LOW <= lo <= hi < PITCH_LOW + N_KEYS) or lo > need_lo or hi < need_hi:
                raise ConfigError(f"key_range {tuple(key_range)} must lie on the piano (21..108) and hold the "
                                  f"pieces' notes ({need_lo}..{need_hi})")
        self.key_low = lo - PITCH_LOW  # index of the lowest key the agent controls
        self.n_keys = hi - lo + 1
        self.keyboard = make_keyboard(self.synth)
        n_levels = VELOCITY_LEVELS.size
        if self.mono:
            self.action_space = (gym.spaces.MultiDiscrete([self.n_keys + 1, n_levels]) if velocity
                                 else gym.spaces.Discrete(self.n_keys + 1))
        else:
            self.action_space = (gym.spaces.MultiDiscrete([n_levels + 1] * self.n_keys) if velocity
                                 else gym.spaces.MultiBinary(self.n_keys))
        self.observation_space = gym.spaces.Dict({
            "audio": self.audio_space(),
            **self._extra_spaces(),
            "held": gym.spaces.MultiBinary(self.n_keys),
        })

    def _extras_prepared(self) -> bool:
        return not self.velocity  # data prepare --playing-targets makes the targets without velocity

    def _accepts(self, source) -> bool:
        if isinstance(source, Piece) and source.performance is None:
            return False  # a recording without notes gives no keys to play
        if not self.mono:
            return True
        if isinstance(source, str):
            return corpus.piece_info(source).monophonic
        score = source.score if isinstance(source, Piece) else source
        return isinstance(score, Score) and score.is_monophonic

    def _extra_spaces(self) -> dict[str, gym.spaces.Space]:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- actions -> keys ----------------------------------------------------------------------------------
    def _keys_of(self, action) -> tuple[np.ndarray, np.ndarray | None]:
        """Key indices (0 = A0) down, and their velocities (None: the reference velocity)."""
        if self.mono:
            choice = int(action[0]) if self.velocity else int(action)
            down = np.array([self.key_low + choice - 1]) if choice > 0 else np.zeros(0, dtype=np.int64)
            vel = np.full(down.size, VELOCITY_LEVELS[int(action[1])]) if self.velocity else None
            return down, vel
        arr = np.asarray(action)
        pressed = np.flatnonzero(arr > 0)
        vel = VELOCITY_LEVELS[arr[pressed].astype(np.int64) - 1] if self.velocity else None
        return pressed + self.key_low, vel

    def action_for_keys(self, keys: np.ndarray, velocities: np.ndarray | None = None):
        """The action that holds down exactly ``keys`` (a bool vector over the 88 piano keys), struck at
        ``velocities`` (same shape; used with ``velocity=True``). The inverse of the env's action mapping."""
        keys = np.asarray(keys, dtype=bool)[self.key_low:self.key_low + self.n_keys]
        levels = np.zeros(self.n_keys, dtype=np.int64)
        if self.velocity and velocities is not None:
            v = np.asarray(velocities, dtype=np.float64)[self.key_low:self.key_low + self.n_keys]
            levels = np.argmin(np.abs(v[:, None] - VELOCITY_LEVELS[None]), axis=1)
            held = keys & (v <= 0)  # a held key keeps its velocity; any level will do
            levels[held] = int(np.argmin(np.abs(VELOCITY_LEVELS - REF_VELOCITY)))
        if self.mono:
            down = np.flatnonzero(keys)
            choice = int(down[-1]) + 1 if down.size else 0
            level = int(levels[down[-1]]) if down.size else int(np.argmin(np.abs(VELOCITY_LEVELS - REF_VELOCITY)))
            return np.array([choice, level], dtype=np.int64) if self.velocity else choice
        if self.velocity:
            return np.where(keys, levels + 1, 0).astype(np.int64)
        return keys.astype(np.int8)

    def oracle_action(self):
        """The action that plays the target at the current frame (what the oracle baseline does)."""
        f = min(self._frame, self._target.n_frames - 1)
        return self.action_for_keys(self._target.keys[f], self._target.velocities[f])

    # --- episode ------------------------------------------------------------------------------------------
    def _start(self, piece: Piece):
        self._target = playing_target(piece, self.mono, self.velocity, self.synth)
        n = self._n_frames = self._target.n_frames
        self._ahead = self._ahead_pixels(self._target)
        self._player = self.keyboard.player()
        self._frame = 0
        self._own_spec = np.zeros((N_BINS, n), dtype=np.float32)
        self._own_pixels = np.zeros((1, N_BINS, n + AUDIO_WINDOW), dtype=np.uint8)  # windows up to frame n
        self._played = np.zeros((n, N_KEYS), dtype=bool)
        self._played_velocity = np.zeros((n, N_KEYS), dtype=np.float32)
        self._keys_obs = np.zeros(self.n_keys, dtype=np.int8)
        return self._observation(), self._info()

    def _advance(self, action):
        f = self._frame
        down, vel = self._keys_of(action)
        frame = self._player.step(down, vel)  # a new array: made log here, in place
        np.log1p(frame, out=frame)  # linear amplitudes are sums of non-negative templates
        self._own_spec[:, f] = frame
        # audio_pixels(frame) written in place: frame >= 0, so only the upper clip is needed
        pixels = frame * AUDIO_SCALE
        self._own_pixels[0, :, f + AUDIO_WINDOW - 1] = np.minimum(np.rint(pixels, out=pixels), 255, out=pixels)
        self._keys_obs = np.zeros(self.n_keys, dtype=np.int8)  # a fresh array each step: the observation holds it
        if down.size == 1:  # one key (mono plays at most one): scalar writes, cheaper than an index array
            key = int(down[0])
            self._played[f, key] = True
            self._keys_obs[key - self.key_low] = 1
        else:
            self._played[f, down] = True
            self._keys_obs[down - self.key_low] = 1
        if vel is not None:
            self._played_velocity[f, down] = vel
        if self.reward_type == "audio":  # spectral_distance for one frame, inlined
            total = float(np.add.reduce(frame)) + self._target.frame_totals[f]
            reward = 1.0 - float(np.add.reduce(np.abs(frame - self._target.spectrum[:, f]))) / total \
                if total > 1e-6 else 1.0
        else:
            hits = int(np.count_nonzero(self._target.keys[f, down]))
            union = self._target.frame_key_counts[f] + down.size - hits
            reward = hits / union if union else 1.0
        self._frame = f + 1
        terminated = self._frame >= self._n_frames
        return self._observation(), reward, terminated, False, self._info()

    def _observation(self) -> dict[str, np.ndarray]:
        f = self._frame
        return {"audio": self._own_pixels[:, :, f:f + AUDIO_WINDOW].copy(),
                self.ahead_key: self._ahead[:, :, f:f + SCORE_WINDOW].copy(),
                "held": self._keys_obs}

    ahead_key: str  # the observation that looks ahead: "score" (SightReading) or "target" (PlayByEar)

    def _ahead_pixels(self, target: PlayingTarget) -> np.ndarray:  # pragma: no cover - abstract
        """The padded pixels the ``ahead_key`` windows are cut from."""
        raise NotImplementedError

    def _info(self) -> dict:
        f = min(self._frame, self._n_frames - 1)
        return {
            "piece_id": self.piece.id,
            "frame": self._frame,
            "time": self._frame / FPS,
            "target_keys": self._target.keys[f].copy(),  # (88,) bool over A0..C8: what this frame should hold
            "keys_down": self._player.keys_down,  # (88,) bool: what the agent holds
        }

    def episode_metrics(self) -> dict[str, float]:
        """Playing metrics over the frames played so far (see :func:`lmm_envs.metrics.playing_metrics`)."""
        n = max(self._frame, 1)
        return playing_metrics(self._played[:n], self._target.keys[:n], self._own_spec[:, :n],
                               self._target.spectrum[:, :n], FPS)

    def episode_audio(self) -> np.ndarray:
        """What the agent played so far, rendered by the env's synth (float32 mono at ``synth.sample_rate``)."""
        if self.piece is None:
            raise ConfigError("no episode yet: call reset() and play before asking for its audio")
        k, on, off = key_notes(self._played[:max(self._frame, 1)])
        if k.size == 0:
            return np.zeros(int(self._frame / FPS * self.synth.sample_rate) + 1, dtype=np.float32)
        vel = self._played_velocity[on, k]
        perf = Performance(k + PITCH_LOW, on / FPS, off / FPS, np.where(vel > 0, vel, REF_VELOCITY),
                           np.zeros(k.size, dtype=np.int64))
        return self.synth.render(perf, duration=self._frame / FPS + 0.1)

    # --- rendering ----------------------------------------------------------------------------------------
    def render(self):
        if self.render_mode != "rgb_array" or self.piece is None:
            return None
        f = self._frame
        own = panel(self._own_pixels[0, :, f:f + AUDIO_WINDOW], 140.0, (3, 8))
        lo = max(0, f - AUDIO_WINDOW)
        target_window = np.zeros((N_BINS, AUDIO_WINDOW), dtype=np.float32)
        seg = self._target.spectrum[:, lo:f] * AUDIO_SCALE
        target_window[:, AUDIO_WINDOW - seg.shape[1]:] = seg
        target = panel(np.minimum(target_window, 255), 140.0, (3, 8))
        keys = np.zeros((N_KEYS, AUDIO_WINDOW), dtype=np.float32)
        segment = self._played[lo:f].T.astype(np.float32) * 255
        keys[:, AUDIO_WINDOW - segment.shape[1]:] = segment
        truth = self._target.keys[lo:f].T.astype(np.float32) * 128
        keys[:, AUDIO_WINDOW - truth.shape[1]:] = np.maximum(keys[:, AUDIO_WINDOW - truth.shape[1]:], truth)
        roll = panel(keys, 255.0, (2, 8))
        mark_column(own, own.shape[1] - 2, AGENT_COLOUR)
        mark_column(target, target.shape[1] - 2, TRUTH_COLOUR)
        return compose([target, own, roll])


class SightReadingEnv(PlayingEnv):
    """
    ## Description
    Sight reading as motion: the agent reads the score ahead of the current time and presses keys; its key
    presses are synthesized and it hears its own playing. The target is a seeded expressive performance of the
    piece; the score the agent reads is that performance's piano roll (the notes as they are to be played),
    so ``expressiveness`` sets how far the timing departs from the notated rhythm. The agent learns the map
    score -> motion and closes the loop motion -> audio through the synthesizer.

    ## Action Space
    Over ``n_keys`` keys: the bundled corpus's pitch range (55..88 for its monophonic pieces, 36..93 for all), the
    same for every split, widened to hold any given pieces' notes, or ``key_range=(low, high)``.
    ``polyphony="mono"`` (default): ``Discrete(n_keys + 1)``: 0 is silence, ``i`` holds down key ``i - 1``;
    ``polyphony="poly"``: ``MultiBinary(n_keys)``, the keys held down. With ``velocity=True`` each struck key
    also gets one of 5 velocities (40, 60, 80, 100, 120): mono ``MultiDiscrete([n_keys + 1, 5])``, poly
    ``MultiDiscrete([6] * n_keys)`` (0 up, ``l`` down at level ``l - 1``). A key that goes down strikes a note, a
    key that goes up releases it (hold a key to sustain; lift it for a frame to strike it again).

    ## Observation Space
    ``Dict``: ``"audio"``: ``Box(0, 255, (1, 75, 40), uint8)``, the spectrogram of the agent's own playing over
    the last 40 frames (2 s); ``"score"``: ``Box(0, 255, (1, 88, 80), uint8)``, the target's piano roll (255 at
    onsets, 128 while held) from 1 s before to 3 s after the frame the next action plays (column 20);
    ``"held"``: ``MultiBinary(n_keys)``, the keys down now.

    ## Rewards
    ``reward="audio"`` (default): ``1 - d`` with ``d`` the spectral distance (in [0, 1]) between the frame the
    agent's keys sound and the target's frame; ``reward="symbolic"``: the intersection over union of the keys
    down and the target's keys down (1 when both are silent). Both are dense, one per frame, in [0, 1].

    ## Starting State
    A piece and one of ``performances_per_piece`` seeded renderings; no key is down, nothing has sounded.

    ## Episode End
    Terminated when the target (and its last release) has been played through; truncated by
    ``max_episode_steps``. At the end ``info["episode_metrics"]`` holds note onset precision/recall/F1 (50 ms),
    frame precision/recall/F1 and the mean spectral distance.

    ## Arguments
    Those of :class:`~lmm_envs.envs.base.LMMEnv` plus ``polyphony`` (``mono``: monophonic pieces only, e.g.
    the folk tunes; ``poly``), ``velocity`` (False), ``reward`` (``audio``/``symbolic``) and ``key_range``. Sound is made in the
    feature domain from the synth's per-key templates (:mod:`lmm_envs.audio.keyboard`), the target's included.

    ## Version History
    * v0: initial version. Since evaluation protocol 2 performances are rendered in the calibrated ``vienna``
      expressive style by default (``expressive_style="gentle"`` gives the earlier ones; the mechanics are unchanged).
    """

    def _extra_spaces(self):
        return {"score": self.score_space()}

    ahead_key = "score"

    def _ahead_pixels(self, target):
        return target.score_pixels


class PlayByEarEnv(PlayingEnv):
    """
    ## Description
    Playing by ear as motion: the agent hears the target recording a little ahead of time (as a player who has
    heard the piece) and its own playing, reads no score, and presses keys. It learns the map audio -> motion.

    ## Action Space
    As :class:`SightReadingEnv`.

    ## Observation Space
    ``Dict``: ``"audio"``: ``Box(0, 255, (1, 75, 40), uint8)``, the agent's own playing over the last 40 frames;
    ``"target"``: ``Box(0, 255, (1, 75, 80), uint8)``, the target recording's spectrogram from 1 s before to 3 s
    after the frame the next action plays (column 20); ``"held"``: ``MultiBinary(n_keys)``, the keys down now.

    ## Rewards
    As :class:`SightReadingEnv`.

    ## Starting State
    As :class:`SightReadingEnv`.

    ## Episode End
    As :class:`SightReadingEnv`.

    ## Arguments
    As :class:`SightReadingEnv`. The target recording is the target's keys played on the keyboard of ``synth``.

    ## Version History
    * v0: initial version. Since evaluation protocol 2 performances are rendered in the calibrated ``vienna``
      expressive style by default (``expressive_style="gentle"`` gives the earlier ones; the mechanics are unchanged).
    """

    def _extra_spaces(self):
        return {"target": gym.spaces.Box(0, 255, shape=(1, N_BINS, SCORE_WINDOW), dtype=np.uint8)}

    ahead_key = "target"

    def _ahead_pixels(self, target):
        return target.spectrum_pixels
