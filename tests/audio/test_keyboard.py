import numpy as np
import pytest

from lmm_envs.audio.features import FPS, spectrogram
from lmm_envs.audio.keyboard import (
    N_KEYS,
    PITCH_LOW,
    RELEASE_FRAMES,
    TEMPLATE_FRAMES,
    VELOCITY_LEVELS,
    BatchedKeyboardPlayer,
    make_keyboard,
    to_linear,
    to_log,
    velocity_scale,
)
from lmm_envs.audio.synth import make_synth
from lmm_envs.music.score import Performance


@pytest.fixture(scope="module")
def keyboard():
    return make_keyboard("harmonic")


def test_template_of_a4_peaks_at_the_a4_band(keyboard):
    from lmm_envs.audio.features import band_frequencies

    spectrum = keyboard.mean_spectrum()[69 - PITCH_LOW]
    assert abs(band_frequencies()[int(np.argmax(spectrum))] - 440.0) < 30


def test_player_matches_the_synth_rendering_closely(keyboard):
    """A chord and a melody played as key states sound (in features) like the synth's own rendering of them."""
    synth = make_synth("harmonic")
    perf = Performance(np.array([60, 64, 67, 72]), np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.95, 0.45, 0.95, 1.45]),
                       np.full(4, 80.0), np.zeros(4, dtype=int))
    real = spectrogram(synth.render(perf, duration=2.0))
    keys = np.zeros((real.shape[1], N_KEYS), dtype=bool)
    for p, on, off in zip(perf.pitch, perf.onset, perf.offset, strict=True):
        keys[int(round(on * FPS)):int(round(off * FPS)), p - PITCH_LOW] = True
    played = to_log(keyboard.render_keys(keys))
    assert np.abs(played - real).mean() < 0.1 * real.mean()


def test_render_keys_equals_playing_live_bit_for_bit(keyboard):
    rng = np.random.default_rng(0)
    keys = rng.random((60, N_KEYS)) < 0.03
    velocities = np.where(keys, rng.choice([40.0, 80.0, 120.0], keys.shape), 0.0)
    offline = keyboard.render_keys(keys, velocities)
    player = keyboard.player()
    live = np.stack([player.step(np.flatnonzero(k), v[np.flatnonzero(k)]) for k, v in zip(keys, velocities,
                                                                                            strict=True)], axis=1)
    assert np.array_equal(offline, live)


def test_released_key_fades_within_the_release_frames_and_sustain_is_bounded(keyboard):
    player = keyboard.player()
    frames = [player.step(np.array([39])) for _ in range(5)]
    frames += [player.step(np.zeros(0, dtype=int)) for _ in range(RELEASE_FRAMES + 2)]
    assert frames[0].sum() > 0 and frames[4].sum() > 0
    assert frames[5 + RELEASE_FRAMES].sum() == 0
    held = keyboard.player()
    sums = [held.step(np.array([39])).sum() for _ in range(TEMPLATE_FRAMES + 5)]
    assert sums[TEMPLATE_FRAMES + 1] == 0  # no key sounds longer than the synth's longest note


def test_velocity_scales_amplitude_and_louder_is_louder(keyboard):
    soft = keyboard.player().step(np.array([39]), np.array([40.0]))
    loud = keyboard.player().step(np.array([39]), np.array([120.0]))
    assert loud.sum() > soft.sum()
    np.testing.assert_allclose(loud / soft.clip(1e-12), velocity_scale(120.0) / velocity_scale(40.0), rtol=1e-4,
                               atol=0, equal_nan=True, err_msg="linear units scale with velocity")


def test_linear_and_log_units_round_trip():
    x = np.linspace(0, 8, 50, dtype=np.float32)
    np.testing.assert_allclose(to_log(to_linear(x)), x, atol=1e-5)


@pytest.mark.parametrize("with_velocities", [True, False])
def test_batched_player_equals_one_player_per_row_bit_for_bit(keyboard, with_velocities):
    """Random key states with re-strikes, chords, velocities (or the reference one) and rows that sit out steps
    (as resetting envs do)."""
    rng = np.random.default_rng(5)
    n, frames = 5, 150
    batched = BatchedKeyboardPlayer(keyboard, n, capacity=2)  # small: it has to grow
    players = [keyboard.player() for _ in range(n)]
    for f in range(frames):
        down = rng.random((n, N_KEYS)) < np.where(np.arange(n) < 2, 0.02, 0.3)[:, None]  # sparse and dense rows
        velocities = rng.choice(VELOCITY_LEVELS, size=(n, N_KEYS))
        active = rng.random(n) < 0.9
        if f == 70:
            batched.reset(3)
            players[3] = keyboard.player()
        gains = velocity_scale(velocities).astype(np.float32) if with_velocities else None
        out = batched.step(down, gains, active)
        for i in np.flatnonzero(active):
            keys = np.flatnonzero(down[i])
            expected = players[i].step(keys, velocities[i, keys] if with_velocities else None)
            assert out[i].tobytes() == expected.tobytes(), (f, i)
            assert np.array_equal(batched.held[i], players[i].keys_down)
        assert not out[~active].any()
    assert batched._key.shape[1] > 2


def test_a_played_frame_is_the_callers_to_change(keyboard):
    """The player hands out a fresh frame even where it reads a note straight from the keyboard's tables: changing
    it (as an env's in-place log1p or a user's edit does) changes nothing that any player plays later."""
    strokes = ([39], [39], [], [], [12], [])

    def play() -> list[bytes]:
        player, frames = keyboard.player(), []
        for keys in strokes:
            frame = player.step(np.array(keys, dtype=np.int64))
            frames.append(frame.tobytes())
            frame += 1.0
        return frames

    assert play() == play()
