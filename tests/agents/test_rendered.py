import json

import numpy as np
import pytest
import torch

from agents.lm import rendered
from agents.lm.audio import train_audio_lm
from agents.lm.data import load_paired
from agents.lm.mapping import held_out_ids, own_share


@pytest.fixture(scope="module")
def piece_id():
    return held_out_ids()[0]


def test_the_rendered_score_sounds_score_frame_c_at_frame_c(piece_id):
    piece = load_paired(piece_id)
    frames = rendered.rendered_frames(piece_id)
    assert frames.shape[1] == piece["audio"].shape[1] and len(frames) >= len(piece["score"])
    onsets = np.flatnonzero(piece["score"].sum(1) > 0)
    loudness = frames.sum(1)
    rise = np.flatnonzero(np.diff(loudness) > 0.5 * np.diff(loudness).max()) + 1  # the strongest attacks
    assert all(np.abs(onsets - r).min() <= 1 for r in rise)  # every strong attack is at a score onset
    assert np.array_equal(frames, rendered.rendered_frames(piece_id))  # the same rendering every time


def test_a_performance_that_is_the_rendering_is_placed_exactly(piece_id):
    """Heard against itself, every moment with a window unlike the others' finds its own place."""
    piece = load_paired(piece_id)
    frames = rendered.rendered_frames(piece_id)
    deadpan = {"audio": frames, "position": np.arange(len(frames)).clip(max=len(piece["score"]) - 1)}
    times = np.array([40, 90, 140, 190, 240])
    distance = rendered.rendered_distance(deadpan, frames, times)
    assert distance.shape == (5, 5)
    assert own_share(-distance) == pytest.approx(5.0)
    assert torch.allclose(torch.diagonal(distance), torch.zeros(5, dtype=distance.dtype), atol=1e-9)


def test_an_ideal_reading_ties_only_where_the_rendered_windows_repeat():
    rng = np.random.default_rng(0)
    passage = rng.random((60, 5))
    rendered_score = np.concatenate([passage, passage, rng.random((60, 5))])  # bars 1-60 played twice
    piece = {"position": np.arange(len(rendered_score))}
    assert rendered.ideal_hits(piece, rendered_score, np.array([100, 130, 150])) == 3.0
    # frames 40 and 100 read the same 21 frames (20 before the place and the place): each ties with the other
    assert rendered.ideal_hits(piece, rendered_score, np.array([40, 100, 150])) == 2.0


def test_the_map_is_a_ridge_regression_and_the_identity_a_plain_cosine():
    generator = torch.Generator().manual_seed(0)
    heard = torch.randn(400, 6, generator=generator)
    weight, bias = torch.randn(6, 6, generator=generator), torch.randn(6, generator=generator)
    played = heard @ weight + bias
    fitted = rendered.RenderedMap.fit(heard, played, 1e-8, paired_budget=2)
    assert torch.allclose(fitted.weight, weight, atol=1e-4) and torch.allclose(fitted.bias, bias, atol=1e-4)
    assert torch.allclose(fitted.center, played.mean(0))
    assert rendered.RenderedMap.fit(heard, played, 10.0, 2).weight.norm() < fitted.weight.norm()  # ridge shrinks
    plain = torch.nn.functional.normalize(heard[:4].double(), dim=1) @ torch.nn.functional.normalize(
        played[:4].double(), dim=1).T
    assert torch.allclose(rendered.RenderedMap.identity(6).similarity(heard[:4], played[:4]), plain)
    with pytest.raises(ValueError, match="ridge must be positive"):
        rendered.RenderedMap.fit(heard, played, 0.0, 2)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rendered_lms")
    train_audio_lm(size="tiny", steps=40, limit=4, progress=False).model.save(folder / "lm_a.pt")
    return folder


def test_the_cli_chooses_ridge_and_share_on_val_and_reports_each_budget(lm_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("agents.lm.mapping.held_out_ids", lambda: held_out_ids()[:1])
    monkeypatch.setattr("agents.lm.mapping.validation_ids", lambda: held_out_ids()[1:2])
    out, figure = tmp_path / "rendered.json", tmp_path / "rendered.png"
    args = ["--lm-dir", str(lm_dir), "--paired-budget", "2", "--candidates", "8", "--ridges", "1e-4", "1e-2",
            "--out", str(out), "--plot", str(figure), "--quiet"]
    assert rendered.main(args) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["paired_budget"], report["queries"]) == (2, 8)
    assert row["ridge"] in (1e-4, 1e-2) and row["share"] in rendered.SHARES
    for entry in (report["no_map"], report["rendered_alone"], report["ideal_reading"], row["map_alone"], row["mixed"]):
        assert 0.0 <= entry["ci"][0] <= entry["share"] <= entry["ci"][1] <= 1.0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_it_cannot_run_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert rendered.main(["--lm-dir", str(tmp_path), "--out", str(out)]) == 2
    assert rendered.main(["--lm-dir", str(tmp_path), "--candidates", "1", "--out", str(out)]) == 2
    assert rendered.main(["--lm-dir", str(tmp_path), "--out", str(tmp_path / "nowhere" / "r.json")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("error: ") for e in errors)
    assert "lm_a.pt not found" in errors[0] and "--candidates" in errors[1] and "does not exist" in errors[2]
    assert not out.exists()
