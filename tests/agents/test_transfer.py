import json

import numpy as np
import pytest
import torch

from agents.lm import transfer
from agents.lm.audio import train_audio_lm
from agents.lm.fusion import PIANOS, fused_retrieval
from agents.lm.keyboard_fit import harmonic_keyboard, moments
from agents.lm.mapping import fit_mapping, held_out_ids
from agents.lm.symbolic import train_symbolic_lm
from agents.lm.transcription import KeyNet, KeyNetConfig
from lmm_envs.audio.synth import fluidsynth_available


@pytest.fixture(scope="module")
def lms():
    """Tiny LMs with a 2-pair mapping."""
    lm_v = train_symbolic_lm(size="tiny", steps=40, limit=4, progress=False).model
    lm_a = train_audio_lm(size="tiny", steps=40, limit=4, progress=False).model
    torch.manual_seed(0)
    return lm_a, lm_v, fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20)


def test_on_the_envs_synth_every_share_is_the_fusions_lm_and_piano_mix(lms):
    """On the harmonic synth the transfer's mixes are agents.lm.fusion's LM + piano mixes (h's keyboard, no h)."""
    lm_a, lm_v, mapping = lms
    pieces = held_out_ids()[:2]
    hits = transfer.mix_hits(lm_a, lm_v, mapping, harmonic_keyboard(), moments(pieces, "harmonic", candidates=8))
    fusion = fused_retrieval(lm_a, lm_v, mapping, KeyNet(KeyNetConfig()), piece_ids=pieces, candidates=8,
                             pianos=PIANOS)["accuracy"]
    for share in PIANOS:
        assert hits[share].sum() / 16 == pytest.approx(fusion[share][0.0][0.0], abs=1e-12)


@pytest.mark.skipif(not fluidsynth_available(), reason="needs libfluidsynth (CI installs it)")
def test_another_synth_is_heard_on_the_same_moments():
    (harmonic, times), = moments(held_out_ids()[:1], "harmonic", candidates=8)
    (sampled, sampled_times), = moments(held_out_ids()[:1], "fluidsynth", candidates=8)
    assert np.array_equal(times, sampled_times) and np.array_equal(harmonic["score"], sampled["score"])
    assert not np.array_equal(harmonic["audio"], sampled["audio"])


def test_the_cli_chooses_the_share_on_val_and_reports_each_synth_and_budget(lms, tmp_path, monkeypatch):
    lm_a, lm_v, mapping = lms
    lm_a.save(tmp_path / "lm_a.pt")
    lm_v.save(tmp_path / "lm_v.pt")
    mapping.save(tmp_path / "mapping_contrastive_K2.pt")
    monkeypatch.setattr("agents.lm.mapping.held_out_ids", lambda: held_out_ids()[:1])
    monkeypatch.setattr("agents.lm.mapping.validation_ids", lambda: held_out_ids()[1:2])
    out = tmp_path / "transfer.json"
    assert transfer.main(["--lm-dir", str(tmp_path), "--paired-budget", "2", "--synth", "harmonic",
                          "--candidates", "8", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["synth"], row["paired_budget"], row["queries"]) == ("harmonic", 2, 8)
    assert row["piano_share"] in PIANOS
    for name in ("lm_alone", "piano_alone", "lm_piano"):
        assert 0.0 <= row[name]["share"] <= 1.0 and row[name]["ci"][0] <= row[name]["share"] <= row[name]["ci"][1]


@pytest.mark.parametrize("args,message", [
    (["--synth", "organ"], "unknown synth 'organ'"),
    (["--paired-budget", "3"], "mapping_contrastive_K3.pt"),
])
def test_the_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "transfer.json"
    assert transfer.main(["--lm-dir", str(tmp_path), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists()
