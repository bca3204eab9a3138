import numpy as np

from agents.baselines.oltw import OnlineTimeWarping, braking_action, frame_features, held_spectrum, noise_gate


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


def test_braking_steering_reaches_the_target_without_overshoot():
    from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP

    for start_gap, tempo in ((2.0, 1.0), (3.0, 0.5), (-1.5, 1.2)):
        pointer, ratio, target = 0.0, 1.0, start_gap
        gaps = []
        for _ in range(400):
            action = braking_action(pointer, ratio, target, tempo)
            ratio = min(max(ratio + (action - 1) * TEMPO_STEP, 0.0), MAX_RATIO)
            pointer += ratio / 20
            target += tempo / 20
            gaps.append(target - pointer)
        gaps = np.array(gaps)
        sign = np.sign(start_gap)
        assert np.min(sign * gaps) > -0.1, (start_gap, tempo)  # never more than a little past the target
        assert np.all(np.abs(gaps[-100:]) < 0.1)  # and then on it


def test_startup_is_short_so_a_fast_performer_is_found_at_once():
    reference = synthetic_sequence(400)
    live_index = np.minimum((np.arange(200) * 1.8).astype(int), 399)  # 1.8x the reference's tempo
    live = frame_features(reference[live_index].T)
    errors = {}
    for startup in (100, 10):
        oltw = OnlineTimeWarping(frame_features(reference.T), window=60, startup=startup)
        estimates = np.array([oltw.push(f) for f in live])
        errors[startup] = np.median(np.abs(estimates - live_index)[20:100])
    assert errors[10] < errors[100] and errors[10] <= 6


def test_event_steering_holds_back_before_an_onset_oltw_has_not_heard():
    from agents.baselines.oltw import OLTWAgent
    from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP

    agent = OLTWAgent.__new__(OLTWAgent)  # the steering alone, without an env
    agent.onsets = np.array([0.0, 1.0, 2.0, 3.0])
    agent.margin, agent.slack, agent.deadband = 0.05, 0.0, 0.02
    agent.hold_on, agent.lead, agent.grace, agent._top = False, None, None, -np.inf
    agent._last_onset, agent._passed_at = -2, 0.0
    agent.estimates = []
    pointer, ratio, at = 0.0, 1.0, {}
    for frame in range(200):  # OLTW hears onset 1 at 1 s, then nothing new until onset 2 at 4 s (a long hold)
        t = frame / 20
        estimate = 0.0 if t < 1.0 else (1.0 if t < 4.0 else 2.0)
        agent.estimates.append(estimate)
        action = agent._event_action(estimate, 1.0, {"pointer": pointer, "tempo_ratio": ratio})
        ratio = min(max(ratio + (action - 1) * TEMPO_STEP, 0.0), MAX_RATIO)
        pointer += ratio / 20
        at[frame] = pointer
    assert at[19] < 1.05  # held back before onset 1 until OLTW heard it
    assert 1.9 < at[60] < 2.3 and at[79] == at[60]  # coasted a little past onset 2, then stood (not at 4.0)
    assert at[120] > 3.0  # and moved on once OLTW heard onset 2


def test_onsets_weigh_more_than_what_sounds_on():
    held = np.zeros((10, 3))
    held[2, :] = 1.0  # one note sounding through three frames
    f = frame_features(held)
    assert f[0] @ f[1] < 0.3  # its onset frame is far from the frames it is held (a pedal holds notes longer)
    g = frame_features(held, flux_weight=2.0)
    assert g[0] @ g[1] > f[0] @ f[1]


def _steer(agent, estimate_at, frames=200):
    """The pointer's position at each frame when the agent steers alone onto estimates ``estimate_at(t)``."""
    from lmm_envs.envs.score_following import MAX_RATIO, TEMPO_STEP

    agent._last_onset, agent._passed_at, agent._top = -2, 0.0, -np.inf
    agent.estimates = []
    pointer, ratio, at = 0.0, 1.0, []
    for frame in range(frames):
        estimate = estimate_at(frame / 20)
        agent.estimates.append(estimate)
        action = agent._event_action(estimate, 1.0, {"pointer": pointer, "tempo_ratio": ratio})
        ratio = min(max(ratio + (action - 1) * TEMPO_STEP, 0.0), MAX_RATIO)
        pointer += ratio / 20
        at.append(pointer)
    return np.array(at)


def _bare_agent(**settings):
    from agents.baselines.oltw import OLTWAgent

    agent = OLTWAgent.__new__(OLTWAgent)  # the steering alone, without an env
    agent.onsets = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    agent.margin, agent.slack, agent.deadband = 0.05, 0.0, 0.02
    agent.hold_on, agent.lead, agent.grace = False, None, None
    for key, value in settings.items():
        setattr(agent, key, value)
    return agent


def test_hold_on_steering_is_not_pulled_back_when_the_estimate_falls_back():
    # the performance runs at tempo 1 (onsets each second); OLTW's estimate falls back to 0.9 from 1.5 s to 2.5 s
    def estimate_at(t):
        return 0.9 if 1.5 <= t < 2.5 else min(t, 4.0)

    plain = _steer(_bare_agent(), estimate_at)
    held = _steer(_bare_agent(hold_on=True, lead=0.25, grace=0.15), estimate_at)
    assert np.argmax(plain >= 2.0) / 20 > 2.5  # pulled back, it reports onset 2 late (more than 300 ms)
    assert abs(np.argmax(held >= 2.0) / 20 - 2.0) <= 0.1  # on time
    assert abs(np.argmax(held >= 3.0) / 20 - 3.0) <= 0.1


def test_hold_on_steering_passes_an_overdue_onset_that_oltw_missed():
    # OLTW misses onset 2: its estimate stands at 1.9 from 1.9 s until it hears onset 3 at 3 s
    def estimate_at(t):
        return min(t, 1.9) if t < 3.0 else min(t, 4.0)

    plain = _steer(_bare_agent(), estimate_at)
    held = _steer(_bare_agent(hold_on=True, lead=0.25, grace=0.15), estimate_at)
    assert np.argmax(plain >= 3.0) / 20 > 3.5  # stood before onset 2 until OLTW heard onset 3: onset 3 late
    assert abs(np.argmax(held >= 2.0) / 20 - 2.0) <= 0.1  # passed onset 2 when it was overdue
    assert abs(np.argmax(held >= 3.0) / 20 - 3.0) <= 0.1  # and stood before onset 3 until it was played


def test_held_spectrum_holds_a_released_note_and_lets_it_decay():
    spec = np.zeros((2, 6))
    spec[0, :2] = 1.0  # a note released after two frames
    spec[1, 3] = 0.5  # another that starts quieter
    held = held_spectrum(spec, decay=0.5)
    assert np.allclose(held[0], [1.0, 1.0, 0.5, 0.25, 0.125, 0.0625])
    assert np.allclose(held[1], [0.0, 0.0, 0.0, 0.5, 0.25, 0.125])
    # frame by frame (as an agent hears it) gives the same as the whole spectrogram at once
    last, online = None, []
    for t in range(spec.shape[1]):
        last = held_spectrum(spec[:, t:t + 1], 0.5, last)[:, 0]
        online.append(last)
    assert np.array_equal(np.stack(online, axis=1), held)


def test_a_staccato_performance_matches_the_held_reference_better_with_the_held_spectrum():
    """The reference holds each note for 8 frames; the performer lets go after 2 (staccato). With the held
    spectrum the performance's frames are closer to the reference's, and OLTW follows it more closely."""
    rng = np.random.default_rng(3)
    notes = rng.random((40, 24)) * (rng.random((40, 24)) < 0.3)
    reference = np.repeat(notes, 8, axis=0).T  # (bins, frames)
    staccato = reference.copy()
    staccato[:, np.arange(reference.shape[1]) % 8 >= 2] = 0.0
    truth = np.arange(reference.shape[1])

    def follow(hold):
        ref_held = held_spectrum(reference, 0.9) if hold else None
        live_held = held_spectrum(staccato, 0.9) if hold else None
        oltw = OnlineTimeWarping(frame_features(reference, held=ref_held), window=40, startup=10)
        live = frame_features(staccato, held=live_held)
        similarity = np.mean(np.sum(live * frame_features(reference, held=ref_held), axis=1))
        return similarity, np.mean(np.abs(np.array([oltw.push(f) for f in live]) - truth))

    (plain_similarity, plain_error), (held_similarity, held_error) = follow(False), follow(True)
    assert held_similarity > plain_similarity + 0.2
    assert held_error < plain_error
