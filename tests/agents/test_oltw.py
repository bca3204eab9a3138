import numpy as np

from agents.baselines.oltw import OnlineTimeWarping, frame_features, noise_gate


def synthetic_sequence(n, dims=24, seed=0):
    rng = np.random.default_rng(seed)
    return np.repeat(rng.random((n // 4 + 1, dims)), 4, axis=0)[:n]  # piecewise-constant "notes"


def test_follows_a_slower_and_a_faster_live_sequence():
    reference = synthetic_sequence(400)
    for stretch in (0.7, 1.0, 1.4):
        live_index = np.minimum((np.arange(int(400 * stretch)) / stretch).astype(int), 399)
        oltw = OnlineTimeWarping(frame_features(reference.T), window=60)
        live = frame_features(reference[live_index].T)
        estimates = np.array([oltw.push(f) for f in live])
        error = np.abs(estimates - live_index)
        assert np.median(error[50:]) <= 4, stretch
        assert oltw.j <= 399


def test_cost_band_stays_bounded():
    reference = synthetic_sequence(300)
    oltw = OnlineTimeWarping(frame_features(reference.T), window=30)
    for f in frame_features(reference.T):
        oltw.push(f)
    assert oltw._cost.shape == (31, 31)


def test_prefix_minimum_solves_the_recurrence():
    rng = np.random.default_rng(1)
    start, local = rng.random(50) * 10, rng.random(50)
    expected = np.empty(50)
    previous = np.inf
    for k in range(50):
        previous = min(start[k], previous + local[k])
        expected[k] = previous
    assert np.allclose(OnlineTimeWarping._prefix_min(start, local), expected)


def test_rests_and_held_notes_are_crossed_on_the_diagonal():
    """A live sequence equal to the reference is followed frame for frame, through a rest longer than the window
    (silence must match silence) and a long held note (many equally good reference frames)."""
    notes = synthetic_sequence(120)
    held = np.repeat(notes[:1], 50, axis=0)
    rest = np.zeros((150, notes.shape[1]))
    reference = np.concatenate([notes[:60], rest, held, notes[60:]])
    oltw = OnlineTimeWarping(frame_features(reference.T), window=40)
    estimates = np.array([oltw.push(f) for f in frame_features(reference.T)])
    assert np.array_equal(estimates, np.arange(len(reference)))


def test_noise_gate_silences_quiet_values_only():
    spec = np.array([[0.1, 0.5], [0.29, 3.0]])
    assert np.array_equal(noise_gate(spec, 0.3), [[0.0, 0.5], [0.0, 3.0]])
    assert noise_gate(spec, 0.0) is spec
