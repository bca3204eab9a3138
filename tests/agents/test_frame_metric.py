import json

import numpy as np
import pytest
import torch

from agents.lm import frame_metric
from agents.lm.mapping import held_out_ids, own_share


def test_a_tower_sees_only_its_frame_and_the_ones_before():
    torch.manual_seed(0)
    tower = frame_metric.FrameTower(bins=6, width=8, dim=4)
    frames = torch.rand(30, 6)
    later, long_before = frames.clone(), frames.clone()
    later[20:] = torch.rand(10, 6)  # what comes after frame 19
    long_before[:15 - frame_metric.CONTEXT + 1] = 0.0  # what frame 15 cannot see
    with torch.no_grad():
        out = tower(frames)
        assert out.shape == (30, 4)
        assert torch.equal(tower(later)[:20], out[:20])
        assert torch.allclose(tower(long_before)[15], out[15])
        assert not torch.allclose(tower(later)[20:], out[20:])


def test_a_batch_holds_places_apart():
    position = np.repeat(np.arange(50), 3)  # each place heard for three frames
    times = frame_metric._batch_times(position, np.random.default_rng(0), 64)
    places = np.sort(position[times])
    assert len(set(times.tolist())) == len(times) <= 64
    assert np.diff(places).min() >= frame_metric.MIN_APART
    assert len(frame_metric._batch_times(position, np.random.default_rng(0), 5)) == 5


def synthetic_pair(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rendering of random chords (5 frames each) and a performance of it 1.5 times slower, softer, noisy."""
    rng = np.random.default_rng(seed)
    chords = (rng.random((60, 12)) < 0.25) * rng.uniform(0.5, 1.0, (60, 12))
    rendered = np.repeat(chords, 5, axis=0).astype(np.float32)
    position = (np.arange(int(len(rendered) * 1.5)) / 1.5).astype(np.int64)
    audio = (0.6 * rendered[position] + 0.05 * rng.random((len(position), 12))).astype(np.float32)
    return audio, rendered, position


def test_training_is_seeded_and_learns_the_pairs():
    pairs = [synthetic_pair(s) for s in range(3)]
    kept = frame_metric.train_metric(pairs, steps=(1, 150), seed=3, progress=False)
    again = frame_metric.train_metric(pairs, steps=(150,), seed=3, progress=False)
    assert sorted(kept) == [1, 150]
    for a, b in zip(kept[150].parameters(), again[150].parameters(), strict=True):
        assert torch.equal(a, b)
    held = synthetic_pair(7)  # a piece it never saw
    times = frame_metric._batch_times(held[2], np.random.default_rng(1), 32)
    with torch.no_grad():
        before, after = (frame_metric.info_nce(kept[s], held, times, 0.1).item() for s in (1, 150))
    assert after < 0.5 * before
    piece = {"audio": held[0], "position": held[2]}
    moments = np.array([60, 120, 180, 240, 300, 360, 420])
    distance = frame_metric.learned_distance(kept[150], piece, held[1], moments)
    assert distance.shape == (7, 7) and own_share(-distance) >= 6


def test_training_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="at least one paired piece"):
        frame_metric.train_metric([], progress=False)
    with pytest.raises(ValueError, match="steps must be positive"):
        frame_metric.train_metric([synthetic_pair(0)], steps=(0,), progress=False)


def test_the_cli_chooses_steps_and_share_on_val_and_reports_each_budget(tmp_path, monkeypatch):
    monkeypatch.setattr("agents.lm.mapping.held_out_ids", lambda: held_out_ids()[:1])
    monkeypatch.setattr("agents.lm.mapping.validation_ids", lambda: held_out_ids()[1:2])
    out, figure = tmp_path / "frame_metric.json", tmp_path / "frame_metric.png"
    args = ["--paired-budget", "2", "--steps", "3", "6", "--candidates", "8", "--out", str(out),
            "--plot", str(figure), "--quiet"]
    assert frame_metric.main(args) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["paired_budget"], report["queries"], report["steps"]) == (2, 8, [3, 6])
    assert row["steps"] in (3, 6) and sorted(row["val_metric_alone"]) == ["3", "6"]
    for entry in (report["rendered_alone"], row["metric_alone"], row["mixed"]):
        assert 0.0 <= entry["ci"][0] <= entry["share"] <= entry["ci"][1] <= 1.0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_it_cannot_run_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert frame_metric.main(["--candidates", "1", "--out", str(out)]) == 2
    assert frame_metric.main(["--steps", "0", "--out", str(out)]) == 2
    assert frame_metric.main(["--paired-budget", "0", "--out", str(out)]) == 2
    assert frame_metric.main(["--out", str(tmp_path / "nowhere" / "m.json")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(e.startswith("error: ") for e in errors)
    assert "--candidates" in errors[0] and "--steps" in errors[1] and "--paired-budget" in errors[2]
    assert "does not exist" in errors[3]
    assert not out.exists()
