import json

import numpy as np
import pytest
import torch

from agents.lm import fusion
from agents.lm.audio import train_audio_lm
from agents.lm.fusion import best_mix, best_setting, best_weight, fused, fused_retrieval, standardised
from agents.lm.mapping import (
    fit_mapping,
    held_out_ids,
    motion_retrieval_accuracy,
    own_share,
    piano_distance,
    retrieval_accuracy,
    retrieval_moments,
)
from agents.lm.symbolic import train_symbolic_lm
from agents.lm.transcription import KeyNet, KeyNetConfig


@pytest.fixture(scope="module")
def bridges():
    """Tiny LMs with a 2-pair mapping, and an untrained h (its refinement alone hears the keys)."""
    lm_v = train_symbolic_lm(size="tiny", steps=40, limit=4, progress=False).model
    lm_a = train_audio_lm(size="tiny", steps=40, limit=4, progress=False).model
    torch.manual_seed(0)
    return lm_a, lm_v, fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20), KeyNet(KeyNetConfig(refine_steps=50))


def test_standardised_rows_have_zero_mean_and_unit_spread_and_flat_rows_stay_zero():
    rows = standardised(torch.tensor([[1.0, 2.0, 6.0], [3.0, 3.0, 3.0]], dtype=torch.float64))
    assert torch.allclose(rows[0].mean(), torch.tensor(0.0, dtype=torch.float64))
    assert torch.allclose(rows[0].std(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(rows[1], torch.zeros(3, dtype=torch.float64))  # no preference: the other comparison decides


def test_the_mix_leans_on_the_comparison_its_weight_favours():
    by_lm = torch.tensor([[0.9, 0.1], [0.8, 0.7]], dtype=torch.float64)  # query 1 finds key 0
    by_motion = torch.tensor([[0.2, 0.3], [0.1, 0.9]], dtype=torch.float64)  # query 1 finds key 1
    assert fused(by_lm, by_motion, 0.0)[1].argmax() == 0 and fused(by_lm, by_motion, 1.0)[1].argmax() == 1
    with pytest.raises(ValueError, match="weight"):
        fused(by_lm, by_motion, 1.5)


def test_best_weight_takes_the_top_and_breaks_ties_towards_an_even_mix():
    assert best_weight({0.0: 0.5, 0.3: 0.7, 0.6: 0.7, 1.0: 0.6}) == 0.6
    assert best_weight({0.0: 0.9, 0.5: 0.2, 1.0: 0.1}) == 0.0


def test_best_setting_takes_the_top_and_breaks_ties_towards_less_timing():
    accuracy = {0.0: {0.0: 0.5, 0.5: 0.7, 1.0: 0.6}, 0.01: {0.0: 0.5, 0.5: 0.8, 1.0: 0.7},
                0.02: {0.0: 0.5, 0.4: 0.8, 1.0: 0.7}}
    assert best_setting(accuracy) == (0.5, 0.01)
    assert best_setting({0.0: {0.0: 0.9, 1.0: 0.1}, 0.01: {0.0: 0.9, 1.0: 0.2}}) == (0.0, 0.0)


def test_best_mix_takes_the_top_and_breaks_ties_towards_less_piano():
    accuracy = {0.0: {0.0: {0.0: 0.5, 1.0: 0.6}}, 0.5: {0.0: {0.0: 0.7, 1.0: 0.8}}, 1.0: {0.0: {0.0: 0.8, 1.0: 0.8}}}
    assert best_mix(accuracy) == (0.5, 1.0, 0.0)


def test_the_ends_of_the_mix_are_each_bridge_alone_on_the_same_moments(bridges):
    lm_a, lm_v, mapping, h = bridges
    pieces = held_out_ids()[:2]
    result = fused_retrieval(lm_a, lm_v, mapping, h, weights=(0.0, 0.5, 1.0), timings=(0.0, 0.05), piece_ids=pieces,
                             candidates=8, pianos=(0.0, 0.5, 1.0))
    assert result["queries"] == 16 and result["chance"] == 1 / 8
    lm_alone = retrieval_accuracy(lm_a, lm_v, mapping, piece_ids=pieces, candidates=8)["accuracy"]
    for timing in (0.0, 0.05):
        h_alone = motion_retrieval_accuracy(h, piece_ids=pieces, candidates=8, compare="sequence",
                                            timing=timing)["accuracy"]
        assert result["accuracy"][0.0][timing][0.0] == pytest.approx(lm_alone, abs=1e-12)  # timing is h's alone
        assert result["accuracy"][0.0][timing][1.0] == pytest.approx(h_alone, abs=1e-12)
    rng = np.random.default_rng(0)
    piano_alone = sum(own_share(-piano_distance(h, *retrieval_moments(pid, rng, 8))) for pid in pieces) / 16
    for timing in (0.0, 0.05):
        for weight in (0.0, 0.5, 1.0):
            assert result["accuracy"][1.0][timing][weight] == pytest.approx(piano_alone, abs=1e-12)


def test_the_score_through_the_piano_finds_its_own_moment():
    """No pairs and no training: the score window's keys through h's keyboard, against the frames heard."""
    h = KeyNet(KeyNetConfig())
    piece, times = retrieval_moments(held_out_ids()[0], np.random.default_rng(0), 8)
    distance = piano_distance(h, piece, times)
    assert distance.shape == (8, 8) and bool((distance >= 0).all())
    assert own_share(-distance) >= 5  # chance: 1 of 8
    far = piano_distance(h, {**piece, "sounding": np.zeros_like(piece["sounding"])}, times)  # nothing played
    assert torch.equal(far, torch.ones_like(far))  # a silent score is as far as anything can be


def test_the_cli_chooses_the_weight_on_val_and_reports_held_out_retrieval(bridges, tmp_path, monkeypatch, capsys):
    lm_a, lm_v, mapping, h = bridges
    lm_a.save(tmp_path / "lm_a.pt")
    lm_v.save(tmp_path / "lm_v.pt")
    mapping.save(tmp_path / "mapping_contrastive_K2.pt")
    for seed in (0, 1):  # two h networks for K = 2, found through the {K} in their paths
        torch.manual_seed(seed)
        KeyNet(KeyNetConfig(refine_steps=50)).save(tmp_path / f"h_K2_s{seed}.pt", {"paired_budget": 2, "seed": seed})
    monkeypatch.setattr("agents.lm.mapping.held_out_ids", lambda: held_out_ids()[:1])
    monkeypatch.setattr("agents.lm.mapping.validation_ids", lambda: held_out_ids()[1:2])
    out, figure = tmp_path / "fusion.json", tmp_path / "fusion.png"
    assert fusion.main(["--lm-dir", str(tmp_path), "--paired-budget", "2", "--h", str(tmp_path / "h_K{K}_s0.pt"),
                        str(tmp_path / "h_K{K}_s1.pt"), "--out", str(out), "--plot", str(figure)]) == 0
    report = json.loads(out.read_text())
    assert [r["h"] for r in report["rows"]] == [str(tmp_path / "h_K2_s0.pt"), str(tmp_path / "h_K2_s1.pt")]
    for row in report["rows"]:
        by_piano = {float(p): {float(t): {float(w): a for w, a in by_weight.items()} for t, by_weight in by_t.items()}
                    for p, by_t in row["val"].items()}
        assert set(by_piano) == set(fusion.PIANOS)
        val = by_piano[0.0]
        assert set(val) == set(fusion.TIMINGS)
        assert (row["weight"], row["timing"]) == best_setting(val)
        assert (row["piano"], row["piano_weight"], row["piano_timing"]) == best_mix(by_piano)
        assert row["untimed_weight"] == best_weight(val[0.0])
        assert row["queries"] == 16 and 0.0 <= row["fused"] <= 1.0 and 0.0 <= row["fused_untimed"] <= 1.0
        assert row["h_timing"] == best_setting({t: {1.0: by_weight[1.0]} for t, by_weight in val.items()})[1]
        if row["timing"] == 0.0:
            assert row["fused"] == row["fused_untimed"]
        if row["h_timing"] == 0.0:
            assert row["h_timed"] == row["h_alone"]
        if row["piano"] == 0.0 and (row["piano_weight"], row["piano_timing"]) == (row["weight"], row["timing"]):
            assert row["fused_piano"] == row["fused"]
    assert report["rows"][0]["piano_alone"] == report["rows"][1]["piano_alone"]  # the same keyboard, no pairs
    (summary,) = report["summary"]
    fused_values = [r["fused"] for r in report["rows"]]
    assert summary["n"] == 2 and summary["fused"]["mean"] == pytest.approx(sum(fused_values) / 2)
    assert summary["fused"]["low"] <= summary["fused"]["mean"] <= summary["fused"]["high"]
    assert figure.stat().st_size > 1000
    assert "(chosen on val)" in capsys.readouterr().out


def test_the_cli_names_what_is_missing(tmp_path, capsys):
    assert fusion.main(["--lm-dir", str(tmp_path), "--paired-budget", "8", "--h", str(tmp_path / "h.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not found:") and "mapping_contrastive_K8.pt" in err and len(err.splitlines()) == 1


def test_the_cli_refuses_a_negative_timing(tmp_path, capsys):
    assert fusion.main(["--lm-dir", str(tmp_path), "--paired-budget", "8", "--h", str(tmp_path / "h.pt"),
                        "--timings", "0.01", "-0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --timings") and len(err.splitlines()) == 1
