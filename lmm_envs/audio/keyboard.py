"""Playing keys in the feature domain: what an agent's key presses sound like, frame by frame, at step speed.

An agent that plays (accompanies, sight-reads) needs its audio one frame at a time, thousands of times a second.
Rendering samples and a spectrogram each step would cost far more than the rest of the step, so a
:class:`Keyboard` precomputes, once per synth, the spectrogram of one struck note of every piano key (its
*template*, in linear amplitude units ``expm1(spectrogram)``) and how a released note fades over the next frames.
A note struck at frame ``f0`` with velocity ``v`` and released at frame ``f1`` then sounds, at frame ``f``::

    velocity_scale(v) * template[pitch][:, f - f0] * (1 if f < f1 else release[pitch][f - f1])

and the notes that sound at once are summed in linear amplitude (the spectrogram of a mix, less the
interference between partials that share a band). :class:`KeyboardPlayer` computes this one frame at a time from
key states; :meth:`Keyboard.render_keys` runs the same player over a whole key-state sequence, so a target
rendered offline and the same keys played live give the same frames, bit for bit.
:class:`BatchedKeyboardPlayer` plays N key-state streams at once, each bit for bit as its own player would (the
motion tasks' vector envs).

Templates come from any :class:`~lmm_envs.audio.synth.Synth` (HarmonicSynth by default, FluidSynth when asked),
so the keyboard sounds like the synth that renders the pieces; they are cached on disk.
"""

from __future__ import annotations

import numpy as np

from lmm_envs.audio.cache import Cache, default_cache, make_key
from lmm_envs.audio.features import FEATURE_VERSION, FPS, N_BINS, spectrogram
from lmm_envs.audio.synth import Synth, make_synth
from lmm_envs.music.score import Performance

PITCH_LOW, PITCH_HIGH = 21, 108  # the piano's keys, A0..C8
N_KEYS = PITCH_HIGH - PITCH_LOW + 1
TEMPLATE_FRAMES = 60  # a held note sounds for at most 3 s (HarmonicSynth's longest note)
RELEASE_FRAMES = 3  # frames after a key goes up in which the note may still be heard
REF_VELOCITY = 80.0  # velocity the templates are rendered at
VELOCITY_LEVELS = np.array([40.0, 60.0, 80.0, 100.0, 120.0])  # what an agent can strike at when it sets velocity
_HELD_FOR_RELEASE = 10  # frames a note is held when measuring its release
KEYBOARD_VERSION = 1


def velocity_scale(velocity) -> np.ndarray:
    """Amplitude of a note struck at ``velocity`` relative to one at :data:`REF_VELOCITY` ((v / ref) ** 1.5)."""
    return (np.asarray(velocity, dtype=np.float64) / REF_VELOCITY) ** 1.5


def to_linear(spec: np.ndarray) -> np.ndarray:
    """Spectrogram values (``log1p(100 * amplitude)``) -> linear amplitude units that add when sounds mix."""
    return np.expm1(np.asarray(spec, dtype=np.float32))


def to_log(linear: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_linear`."""
    return np.log1p(np.maximum(linear, 0.0)).astype(np.float32)


def _single_note(pitch: int, seconds: float) -> Performance:
    return Performance(np.array([pitch]), np.array([0.0]), np.array([seconds]), np.array([REF_VELOCITY]),
                       np.array([0]))


def _build_templates(synth: Synth) -> dict[str, np.ndarray]:
    n = TEMPLATE_FRAMES + RELEASE_FRAMES
    templates = np.zeros((N_KEYS, N_BINS, n), dtype=np.float32)
    release = np.zeros((N_KEYS, RELEASE_FRAMES), dtype=np.float32)
    long_seconds = (n + 2) / FPS
    short_seconds = _HELD_FOR_RELEASE / FPS
    for k in range(N_KEYS):
        pitch = PITCH_LOW + k
        held = to_linear(spectrogram(synth.render(_single_note(pitch, long_seconds),
                                                  duration=long_seconds + 0.5), synth.sample_rate))
        templates[k, :, :min(n, held.shape[1])] = held[:, :n]
        templates[k, :, TEMPLATE_FRAMES:] = 0.0  # the longest note a key sustains
        short = to_linear(spectrogram(synth.render(_single_note(pitch, short_seconds),
                                                   duration=long_seconds + 0.5), synth.sample_rate))
        for r in range(RELEASE_FRAMES):
            f = _HELD_FOR_RELEASE + r
            total = float(held[:, f].sum())
            release[k, r] = min(float(short[:, f].sum()) / total, 1.0) if total > 0 else 0.0
    return {"templates": templates, "release": release}


class Keyboard:
    """Per-key spectral templates of a synth (see the module docstring). Build with :func:`make_keyboard`."""

    def __init__(self, templates: np.ndarray, release: np.ndarray, synth_name: str):
        if templates.shape != (N_KEYS, N_BINS, TEMPLATE_FRAMES + RELEASE_FRAMES):
            raise ValueError(f"templates must have shape {(N_KEYS, N_BINS, TEMPLATE_FRAMES + RELEASE_FRAMES)}")
        self.templates = np.ascontiguousarray(templates, dtype=np.float32)
        self.release = np.ascontiguousarray(release, dtype=np.float32)
        self.synth_name = synth_name
        # the template of every key in (key, frame, bin) order: one contiguous row per frame of a note
        self._rows = np.ascontiguousarray(self.templates.transpose(0, 2, 1))
        self._release_factors = [list(map(np.float32, factors)) for factors in self.release]  # scalars: fast to index
        # the frames of a released note struck at the reference velocity, (key, frames since release, age, bin):
        # the float32 products a player would compute, looked up instead (the default, velocity-free case)
        self._released_rows = self.release[:, :, None, None] * self._rows[:, None]
        for table in (self._rows, self._released_rows):  # players hand out views of these: nobody writes them
            table.flags.writeable = False

    def note_sound(self, key: int, held_frames: int, gain: float) -> np.ndarray:
        """The frames ``(N_BINS, held + RELEASE_FRAMES)`` of one note held ``held_frames`` frames (the player's
        formula, for a whole note at once)."""
        held = int(min(max(held_frames, 1), TEMPLATE_FRAMES))
        out = np.zeros((N_BINS, held + RELEASE_FRAMES), dtype=np.float32)
        out[:, :held] = self.templates[key, :, :held]
        out[:, held:] = self.templates[key, :, held:held + RELEASE_FRAMES] * self.release[key]
        return out * np.float32(gain)

    def add_note(self, out: np.ndarray, frame: int, pitch: int, held_frames: int, gain: float) -> int:
        """Add a note of MIDI ``pitch`` struck at ``frame`` into linear-amplitude frames ``out`` ``(N_BINS, T)``
        (cut at the end of ``out``); returns the frame after the last one it reached."""
        key = min(max(int(pitch) - PITCH_LOW, 0), N_KEYS - 1)
        sound = self.note_sound(key, held_frames, gain)
        end = min(frame + sound.shape[1], out.shape[1])
        out[:, frame:end] += sound[:, :end - frame]
        return end

    def mean_spectrum(self, frames: int = 4) -> np.ndarray:
        """Each key's average spectrum over its first ``frames`` frames, ``(N_KEYS, N_BINS)``, linear units."""
        return self.templates[:, :, :frames].mean(axis=2)

    def player(self) -> KeyboardPlayer:
        return KeyboardPlayer(self)

    def render_keys(self, keys: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
        """Frames (``(N_BINS, n_frames)``, linear units) of a key-state sequence played by :class:`KeyboardPlayer`.

        ``keys`` is ``(n_frames, N_KEYS)`` bool (key down at frame); ``velocities`` the same shape (the
        velocity of a key at the frame it goes down; default :data:`REF_VELOCITY`).
        """
        keys = np.asarray(keys, dtype=bool)
        player = self.player()
        out = np.empty((N_BINS, keys.shape[0]), dtype=np.float32)
        for f in range(keys.shape[0]):
            down = np.flatnonzero(keys[f])
            vel = None if velocities is None else np.asarray(velocities)[f, down]
            out[:, f] = player.step(down, vel)
        return out


class KeyboardPlayer:
    """Plays a :class:`Keyboard` one frame at a time from key states (which keys are down at this frame)."""

    def __init__(self, keyboard: Keyboard):
        self.keyboard = keyboard
        self.reset()

    def reset(self) -> None:
        self.frame = 0
        self._held: set[int] = set()
        # per sounding note: key, onset frame, gain (None: 1.0, the reference velocity), release frame (-1 while down)
        self._notes: list[list] = []
        self._sounding_index: dict[int, list] = {}
        self._held_mask = np.zeros(N_KEYS, dtype=bool)

    @property
    def keys_down(self) -> np.ndarray:
        """The keys held now, ``(N_KEYS,)`` bool."""
        return self._held_mask.copy()

    def step(self, down: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
        """Set the keys down at this frame (key indices, 0 = A0) and return the frame's sound, ``(N_BINS,)``, a new
        array.

        A key that was up and is now down strikes a note (at ``velocities`` for those keys, default
        :data:`REF_VELOCITY`); a key that goes up releases its note.
        """
        f = self.frame
        keys = down.tolist() if isinstance(down, np.ndarray) and down.ndim == 1 and down.dtype.kind in "iu" \
            else np.asarray(down, dtype=np.int64).reshape(-1).tolist()
        now = set(keys)
        before = self._held
        for k in before - now:
            self._sounding_index.pop(k)[3] = f
        if now - before:
            if velocities is None:
                gains = dict.fromkeys(now - before, 1.0)
            else:
                vel = np.broadcast_to(np.asarray(velocities, dtype=np.float64), (len(keys),))
                gains = {k: float(g) for k, g in zip(keys, velocity_scale(vel).tolist(), strict=True) if k not in before}
            for k in sorted(gains):
                gain = np.float32(gains[k])
                note = [k, f, None if gain == 1.0 else gain, -1]
                self._notes.append(note)
                self._sounding_index[k] = note
        if now != before:
            self._held_mask[:] = False
            self._held_mask[keys] = True
        self._held = now
        # A note struck at the reference velocity (gain None: 1.0) sounds a template row as it is, a view into the
        # keyboard's tables; the sum copies before it adds in place. The first note's frame becomes the sum (0 + x
        # is x for these non-negative frames).
        out, own = None, False
        rows = self.keyboard._rows
        released_rows = self.keyboard._released_rows
        release = self.keyboard._release_factors
        alive = []
        for note in self._notes:
            k, onset, gain, released = note
            age = f - onset
            if released < 0:
                alive.append(note)
                if age >= TEMPLATE_FRAMES:
                    continue
                sound = rows[k, age] if gain is None else gain * rows[k, age]
            else:
                r = f - released
                if r >= RELEASE_FRAMES or age >= TEMPLATE_FRAMES + RELEASE_FRAMES:
                    continue
                alive.append(note)
                sound = released_rows[k, r, age] if gain is None else (gain * release[k][r]) * rows[k, age]
            if out is None:
                out, own = sound, gain is not None
            elif own:
                out += sound
            else:
                out, own = out + sound, True
        self._notes = alive
        self.frame = f + 1
        if out is not None and not own:
            return out.copy()
        return np.zeros(N_BINS, dtype=np.float32) if out is None else out



class BatchedKeyboardPlayer:
    """``n`` :class:`KeyboardPlayer` s stepped together, each giving the same frames as its own player, bit for bit.

    The notes of all players live in ``(n, capacity)`` arrays (key, onset frame, gain, release frame, alive),
    grown when a player needs more. A player's frame sums its notes in the order a :class:`KeyboardPlayer` keeps
    them, which is by (onset, key); so the sums run over that order, one vectorised add per note rank.
    """

    def __init__(self, keyboard: Keyboard, n: int, capacity: int = 8):
        self.keyboard = keyboard
        self.n = n
        self.frame = np.zeros(n, dtype=np.int64)
        self.held = np.zeros((n, N_KEYS), dtype=bool)
        self._key = np.zeros((n, capacity), dtype=np.int64)
        self._onset = np.zeros((n, capacity), dtype=np.int64)
        self._gain = np.zeros((n, capacity), dtype=np.float32)
        self._released = np.full((n, capacity), -1, dtype=np.int64)
        self._alive = np.zeros((n, capacity), dtype=bool)
        self._rows = np.arange(n)

    def reset(self, i: int) -> None:
        """Player ``i`` starts again: nothing held, nothing sounding, frame 0."""
        self.frame[i] = 0
        self.held[i] = False
        self._alive[i] = False

    def _grow(self, capacity: int) -> None:
        extra = capacity - self._key.shape[1]
        pad = ((0, 0), (0, extra))
        self._key, self._onset, self._gain = (np.pad(a, pad) for a in (self._key, self._onset, self._gain))
        self._released = np.pad(self._released, pad, constant_values=-1)
        self._alive = np.pad(self._alive, pad)

    def step(self, down: np.ndarray, gains: np.ndarray | None = None, active: np.ndarray | None = None) -> np.ndarray:
        """Set every player's keys down (``(n, N_KEYS)`` bool) and return their frames, ``(n, N_BINS)`` float32.

        ``gains`` (``(n, N_KEYS)`` float32, :func:`velocity_scale` of the strike velocities) applies to the keys
        struck now (default 1). Players outside ``active`` (a ``(n,)`` bool mask) neither change nor advance;
        their rows of the result are zero.
        """
        f = self.frame
        if active is not None:
            down = down & active[:, None]
        struck = down & ~self.held
        lifted = self.held & ~down
        if active is not None:
            lifted &= active[:, None]
        # the held note of a lifted key is released now
        releasing = self._alive & (self._released < 0) & lifted[self._rows[:, None], self._key]
        self._released = np.where(releasing, f[:, None], self._released)
        new_env, new_key = np.nonzero(struck)  # by player, then by key: the order a KeyboardPlayer appends
        if new_env.size:
            free = ~self._alive
            need = np.bincount(new_env, minlength=self.n)
            if np.any(need > free.sum(1)):
                self._grow(self._key.shape[1] + int((need - free.sum(1)).max()))
                free = ~self._alive
            free_env, free_slot = np.nonzero(free)
            first_free = np.concatenate([[0], np.cumsum(np.bincount(free_env, minlength=self.n))[:-1]])
            first_new = np.concatenate([[0], np.cumsum(need)[:-1]])
            slot = free_slot[first_free[new_env] + np.arange(new_env.size) - first_new[new_env]]
            self._key[new_env, slot] = new_key
            self._onset[new_env, slot] = f[new_env]
            self._gain[new_env, slot] = 1.0 if gains is None else gains[new_env, new_key]
            self._released[new_env, slot] = -1
            self._alive[new_env, slot] = True
        self.held = np.where(active[:, None], down, self.held) if active is not None else down
        age = f[:, None] - self._onset
        since = f[:, None] - self._released
        holding = self._released < 0
        ringing = ~holding & (since < RELEASE_FRAMES) & (age < TEMPLATE_FRAMES + RELEASE_FRAMES)
        self._alive &= holding | ringing
        release = self.keyboard.release[self._key, np.clip(since, 0, RELEASE_FRAMES - 1)]
        coefficient = np.where(holding, np.where(age < TEMPLATE_FRAMES, self._gain, np.float32(0.0)),
                               self._gain * release)
        coefficient = np.where(self._alive, coefficient, np.float32(0.0)).astype(np.float32)
        if active is not None:
            coefficient[~active] = 0.0
        never = np.iinfo(np.int64).max
        order = np.lexsort((self._key, np.where(self._alive, self._onset, never)), axis=-1)
        out = np.zeros((self.n, N_BINS), dtype=np.float32)
        age = np.clip(age, 0, TEMPLATE_FRAMES + RELEASE_FRAMES - 1)
        for rank in range(int(self._alive.sum(1).max(initial=0))):
            slot = order[:, rank]
            c = coefficient[self._rows, slot]
            out += c[:, None] * self.keyboard._rows[self._key[self._rows, slot], age[self._rows, slot]]
        self.frame = f + (1 if active is None else active)
        return out


_KEYBOARDS: dict[str, Keyboard] = {}


def keyboard_key(synth: str | Synth = "harmonic") -> str:
    """The cache key of a synth's keyboard: it changes whenever what the keyboard plays would."""
    return make_key("keyboard", synth=make_synth(synth).cache_key(), features=FEATURE_VERSION,
                    version=KEYBOARD_VERSION, frames=TEMPLATE_FRAMES, release=RELEASE_FRAMES, ref=REF_VELOCITY)


def make_keyboard(synth: str | Synth = "harmonic", cache: Cache | None = None) -> Keyboard:
    """The keyboard of a synth: templates built once (a few seconds), then read from the cache."""
    synth_obj = make_synth(synth)
    key = keyboard_key(synth_obj)
    hit = _KEYBOARDS.get(key)
    if hit is None:
        data = (cache or default_cache()).get_or_create(key, lambda: _build_templates(synth_obj),
                                                            required=("templates", "release"))
        hit = Keyboard(data["templates"], data["release"], synth_obj.name)
        _KEYBOARDS[key] = hit
    return hit
