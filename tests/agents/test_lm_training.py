import json
import shutil

import numpy as np
import pytest
import torch

from agents.lm.symbolic import train_symbolic_lm
from agents.lm.training import BatchStream, held_out_loss, train_frame_lm
from agents.pretrain import UNFINISHED, main
from lmm_envs.music import corpus


def _sequences() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random((60, 12)) < 0.2).astype(np.float32) for _ in range(3)]


def test_batches_made_ahead_are_those_of_the_generator_in_order():
    sequences, rng = _sequences(), np.random.default_rng(5)
    stream = BatchStream(sequences, 9, 4, np.random.default_rng(5), 3)
    from agents.lm.data import random_windows

    for _ in range(3):
        batch, state = next(stream)
        assert np.array_equal(batch, random_windows(sequences, 9, 4, rng))
        assert state == rng.bit_generator.state


def test_an_interrupted_run_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    kwargs = dict(loss="bce", context=8, size="tiny", steps=8, progress=False, seed=3)
    straight, straight_losses, done = train_frame_lm(_sequences(), **kwargs)
    assert done
    checkpoint = tmp_path / "lm.pt"
    _, first_losses, done = train_frame_lm(_sequences(), **kwargs, checkpoint=checkpoint, stop_after=3,
                                           checkpoint_every=2)
    assert not done and len(first_losses) == 3
    resumed, losses, done = train_frame_lm(_sequences(), **kwargs, checkpoint=checkpoint)
    assert done and losses == straight_losses
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    checkpoint = tmp_path / "lm.pt"
    train_frame_lm(_sequences(), "bce", 8, "tiny", steps=2, progress=False, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="another run"):
        train_frame_lm(_sequences(), "bce", 8, "tiny", steps=4, progress=False, checkpoint=checkpoint)


def test_the_held_out_loss_reads_pieces_the_lm_never_trained_on_and_falls_with_training():
    run = train_symbolic_lm(size="tiny", steps=60, limit=4, progress=False)
    assert run.held_out_ids and not set(run.held_out_ids) & set(run.ids)
    assert set(run.held_out_ids) <= set(corpus.piece_ids(split="train", pool="unpaired_score"))
    untrained = train_symbolic_lm(size="tiny", steps=1, limit=4, progress=False)
    assert run.held_out_loss < 0.5 * untrained.held_out_loss
    assert run.held_out_loss == held_out_loss(run.model, [np.asarray(x) for x in _score_frames(run.held_out_ids)], 80)


def _score_frames(ids):
    from agents.lm.data import score_frames

    return [score_frames(i) for i in ids]


def test_pretrain_stopped_early_exits_3_and_the_same_command_finishes(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--size", "tiny", "--lm-steps", "6", "--paired-budget", "2", "--method",
            "regression", "--pool-limit", "2", "--no-probe", "--quiet"]
    assert main([*argv, "--stop-after-steps", "4"]) == UNFINISHED
    assert "run the same command to resume" in capsys.readouterr().out
    assert not (tmp_path / "report.json").exists() and (tmp_path / "checkpoints" / "lm_a.pt").exists()
    assert main([*argv, "--audio-pool", "4", "--score-pool", "6", "--seeds", "0", "1", "--audio-layer", "output",
                 "--score-layer", "0"]) == 0
    out = capsys.readouterr().out
    assert "held-out next-frame loss" in out and "over seeds 0, 1: retrieval" in out
    assert (tmp_path / "report.json").exists() and (tmp_path / "lm_v.pt").exists()
    from agents.lm.mapping import Mapping

    saved = Mapping.load(tmp_path / "mapping_regression_K2.pt")  # the first seed's, which the lmm features read
    other = Mapping.load(tmp_path / "mapping_regression_K2_s1.pt")
    assert (saved.audio_pool, saved.score_pool, saved.audio_layer, saved.score_layer) == (4, 6, None, 0)
    assert not torch.equal(saved.weight, other.weight)
    report = json.loads((tmp_path / "report.json").read_text())
    rows = [(m["seed"], m["audio_pool"], m["score_pool"], m["audio_layer"], m["score_layer"]) for m in report["mappings"]]
    assert rows == [(0, 4, 6, None, 0), (1, 4, 6, None, 0)]
    assert all(0.0 <= m["val_accuracy"] <= 1.0 for m in report["mappings"])
    (summary,) = report["summary"]
    values = [m["accuracy"] for m in report["mappings"]]
    assert summary["seeds"] == [0, 1] and summary["accuracy"]["n"] == 2
    assert summary["accuracy"]["mean"] == pytest.approx(sum(values) / 2)
    assert summary["accuracy"]["low"] <= min(values) and summary["accuracy"]["high"] >= max(values)
    assert (tmp_path / "retrieval.png").stat().st_size > 1000
    (tmp_path / "retrieval.png").unlink()
    assert main(["--out", str(tmp_path), "--plot-only"]) == 0 and (tmp_path / "retrieval.png").exists()
    # a second call with the same LMs and another seed, merged with the first into one table
    other = tmp_path / "seed2"
    shutil.copytree(tmp_path / "checkpoints", other / "checkpoints")
    assert main([*argv, "--audio-pool", "4", "--score-pool", "6", "--seeds", "2", "--audio-layer", "output",
                 "--score-layer", "0", "--out", str(other)]) == 0
    merged = tmp_path / "merged"
    assert main(["--merge", str(tmp_path), str(other), "--out", str(merged)]) == 0
    assert "over seeds 0, 1, 2: retrieval" in capsys.readouterr().out
    (summary,) = json.loads((merged / "report.json").read_text())["summary"]
    assert summary["seeds"] == [0, 1, 2] and (merged / "retrieval.png").exists()
    assert main(["--merge", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "twice")]) == 2
    assert "both measured K=2 regression" in capsys.readouterr().err
    assert not (tmp_path / "twice" / "report.json").exists()


def test_merge_refuses_runs_of_other_lms_and_unfinished_runs(tmp_path, capsys):
    from agents.lm.model import SIZES, FrameLM, LMConfig

    for name, seed in (("a", 0), ("b", 1)):
        run = tmp_path / name
        run.mkdir()
        (run / "report.json").write_text(json.dumps({"finished": True, "mappings": []}))
        torch.manual_seed(seed)
        for lm in ("lm_v", "lm_a"):
            FrameLM(LMConfig(input_dim=4, **SIZES["tiny"])).save(run / f"{lm}.pt")
    assert main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "holds other LMs" in capsys.readouterr().err
    (tmp_path / "b" / "report.json").write_text(json.dumps({"finished": False}))
    assert main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "no finished report.json" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_pretrain_refuses_a_negative_stop_and_a_plot_without_a_report(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--stop-after-steps", "-1"]) == 2
    assert "stop-after-steps" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--plot-only"]) == 2
    assert "agents.pretrain" in capsys.readouterr().err
    for flag, value in (("--score-pool", "22"), ("--audio-pool", "0")):
        assert main(["--out", str(tmp_path), flag, value]) == 2
        assert "--score-pool 1 to 21" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--size", "tiny", "--score-layer", "2"]) == 2
    assert "score_layer must be None (the LM's output), a block from 0 to 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--audio-layer", "last"])
    assert "a block number or 'output'" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()  # refused before any training
