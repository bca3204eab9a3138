import json

import numpy as np
import pytest

from agents.lm import keyboard_fit
from agents.lm.keyboard_fit import KeyboardFit, harmonic_keyboard, piece_hits, share_with_interval
from agents.lm.mapping import held_out_ids, piano_distance, retrieval_moments
from agents.lm.transcription import KeyNet, KeyNetConfig
from lmm_envs.music import corpus


def test_the_fit_recovers_a_keyboard_from_frames_that_are_sums_of_its_keys():
    rng = np.random.default_rng(0)
    true = rng.random((88, 75))
    fit = KeyboardFit(prior=np.zeros((88, 75)))
    keys = (rng.random((3000, 88)) < 0.05).astype(np.float64)
    fit.add_frames(keys[:1000], keys[:1000] @ true)  # pieces added one at a time sum up
    fit.add_frames(keys[1000:], keys[1000:] @ true)
    assert fit.frames == 3000
    assert np.allclose(fit.keyboard(ridge=1e-6), true, atol=1e-4)


def test_a_key_no_pair_plays_keeps_the_prior_and_a_stronger_ridge_pulls_towards_it():
    rng = np.random.default_rng(1)
    prior = rng.random((88, 75)).astype(np.float32)
    fit = KeyboardFit(prior)
    keys = np.zeros((500, 88))
    keys[:, 40:50] = rng.random((500, 10)) < 0.3  # only ten keys ever sound
    fit.add_frames(keys, keys @ (2.0 * prior))
    weak, strong = fit.keyboard(ridge=0.1), fit.keyboard(ridge=1e6)
    assert np.array_equal(weak[:40], prior[:40]) and np.array_equal(weak[50:], prior[50:])
    assert np.allclose(weak[40:50], 2.0 * prior[40:50], atol=1e-3)  # the played keys follow the frames
    assert np.allclose(strong, prior, atol=1e-3) and not np.allclose(strong[40:50], weak[40:50], atol=1e-3)
    with pytest.raises(ValueError, match="ridge"):
        fit.keyboard(ridge=0.0)
    with pytest.raises(ValueError, match="do not match"):
        fit.add_frames(keys[:10], np.zeros((9, 75)))


def test_h_keyboard_is_what_h_plays_and_a_keyboard_array_plays_as_h_does():
    """The piano comparison takes an h or a keyboard array: h's own basis gives the same distances."""
    h = KeyNet(KeyNetConfig())
    assert np.array_equal(harmonic_keyboard(), h.basis.numpy())
    piece, times = retrieval_moments(held_out_ids()[0], np.random.default_rng(0), 8)
    assert np.array_equal(piano_distance(h, piece, times).numpy(),
                          piano_distance(harmonic_keyboard(), piece, times).numpy())


def test_a_keyboard_fitted_on_a_real_pair_moves_only_the_keys_it_plays_and_still_finds_its_moments():
    from agents.lm.data import load_paired

    piece = load_paired(corpus.paired_ids(1)[0])
    fit = KeyboardFit(harmonic_keyboard())
    fit.add(piece)
    fitted = fit.keyboard(ridge=10.0)
    played = piece["sounding"].any(axis=0)
    assert np.array_equal(fitted[~played], harmonic_keyboard()[~played])
    assert not np.allclose(fitted[played], harmonic_keyboard()[played])
    rng = np.random.default_rng(0)
    hits = piece_hits(fitted, [retrieval_moments(held_out_ids()[0], rng, 8)])
    assert hits[0] >= 5  # chance: 1 of 8


def test_the_share_comes_with_a_bootstrap_interval_over_pieces():
    all_hit = share_with_interval(np.full(20, 16.0), queries=320)
    assert all_hit["share"] == 1.0 and all_hit["ci"] == [1.0, 1.0]
    mixed = share_with_interval(np.array([16.0, 0.0] * 10), queries=320)
    assert mixed["share"] == 0.5 and mixed["ci"][0] < 0.5 < mixed["ci"][1]


@pytest.mark.parametrize("args,message", [
    (["--synth", "organ"], "unknown synth 'organ'"),
    (["--candidates", "1"], "--candidates must be at least 2"),
    (["--paired-budget", "100000"], "exceeds the paired pool"),
])
def test_the_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "fit.json"
    assert keyboard_fit.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_the_cli_reports_every_budget_with_its_chosen_ridge(tmp_path, monkeypatch):
    """Two pieces each for val and held-out, budgets 1 and 2, the harmonic synth only: the report's shape."""
    monkeypatch.setattr("agents.lm.mapping.held_out_ids", lambda: held_out_ids()[:2])
    monkeypatch.setattr("agents.lm.mapping.validation_ids", lambda: held_out_ids()[2:4])
    out, png = tmp_path / "fit.json", tmp_path / "fit.png"
    assert keyboard_fit.main(["--paired-budget", "2", "1", "--synth", "harmonic", "--candidates", "4",
                              "--out", str(out), "--plot", str(png)]) == 0
    rows = json.loads(out.read_text())["synths"]["harmonic"]
    assert [r["paired_budget"] for r in rows["fitted"]] == [1, 2]
    assert rows["fitted"][0]["frames"] < rows["fitted"][1]["frames"]
    assert rows["queries"] == 8 and rows["h_keyboard"]["share"] == rows["own_keyboard"]["share"]
    for r in rows["fitted"]:
        assert r["ridge"] in keyboard_fit.RIDGES and 0.0 <= r["share"] <= 1.0
        assert r["val"][str(r["ridge"])] == max(r["val"].values())
    assert png.stat().st_size > 0
