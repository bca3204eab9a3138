import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.lm import data as lm_data
from agents.lm import mapping as lm_mapping
from agents.lm import training as lm_training
from agents.lm.audio import train_audio_lm
from agents.lm.mapping import Mapping, fit_mapping, retrieval_accuracy
from agents.lm.model import FrameLM, resolve_device
from agents.lm.symbolic import train_symbolic_lm
from lmm_envs.music import corpus


@pytest.fixture(scope="module")
def tiny_lms():
    v = train_symbolic_lm(size="tiny", steps=80, limit=4, progress=False)
    a = train_audio_lm(size="tiny", steps=80, limit=4, progress=False)
    return v.model, v.losses, a.model, a.losses


def test_each_lm_loss_falls_on_a_tiny_run(tiny_lms):
    _, v_losses, _, a_losses = tiny_lms
    assert np.mean(v_losses[-10:]) < 0.5 * np.mean(v_losses[:10])
    assert np.mean(a_losses[-10:]) < 0.5 * np.mean(a_losses[:10])


def test_lms_save_and_reload_the_same_states(tiny_lms, tmp_path):
    lm_v = tiny_lms[0]
    lm_v.save(tmp_path / "v.pt")
    again = FrameLM.load(tmp_path / "v.pt")
    x = torch.rand(2, 21, 88).round()
    assert torch.equal(lm_v.hidden(x), again.hidden(x))


@pytest.mark.parametrize("method", lm_mapping.METHODS)
def test_mapping_reads_exactly_k_paired_pieces(tiny_lms, monkeypatch, method):
    lm_v, _, lm_a, _ = tiny_lms
    read: list[str] = []
    original_prepare, original_score = lm_data.prepare_piece, lm_data.corpus_score

    def spy_prepare(piece_id, *args, **kwargs):
        read.append(piece_id)
        return original_prepare(piece_id, *args, **kwargs)

    def spy_score(piece_id, *args, **kwargs):
        read.append(piece_id)
        return original_score(piece_id, *args, **kwargs)

    monkeypatch.setattr(lm_data, "prepare_piece", spy_prepare)
    monkeypatch.setattr(lm_data, "corpus_score", spy_score)
    mapping = fit_mapping(lm_a, lm_v, paired_budget=3, method=method, per_piece=20, steps=5, unpaired_pieces=2)
    paired_pool = set(corpus.piece_ids(split="train", pool="paired"))
    assert {pid for pid in read if pid in paired_pool} == set(corpus.paired_ids(3))
    assert all(corpus.piece_info(pid).split == "train" for pid in read)  # nothing from val or test
    assert mapping.paired_budget == 3 and mapping.method == method


def _fitted_states(lm_a, lm_v, audio, score) -> tuple[torch.Tensor, torch.Tensor]:
    """The states a mapping fitted with the default spans and blocks compares."""
    return (lm_mapping.audio_states(lm_a, audio, layer=lm_mapping.AUDIO_LAYER),
            lm_mapping.score_states(lm_v, score, layer=lm_mapping.SCORE_LAYER))


def test_contrastive_training_lowers_its_in_piece_loss_below_the_least_squares_start(tiny_lms):
    lm_v, _, lm_a, _ = tiny_lms
    audio, score, _ = lm_mapping.pair_windows(lm_mapping.paired_pieces(2), 50, np.random.default_rng(0))
    h_a, h_v = _fitted_states(lm_a, lm_v, audio, score)
    losses = {method: float(lm_mapping.in_piece_info_nce(
        fit_mapping(lm_a, lm_v, paired_budget=2, method=method, per_piece=50), h_a, h_v, per_piece=50))
        for method in ("regression", "contrastive")}
    assert losses["contrastive"] < losses["regression"], losses


def test_the_mlp_mapping_fits_its_pairs_closer_than_the_affine_one_and_round_trips(tiny_lms, tmp_path):
    """contrastive_mlp is the affine map plus a residual MLP trained on the same objective: on its training pairs it
    ends below the affine contrastive map's in-piece loss, the same seed gives the same weights, and the saved file
    maps as the fitted one does."""
    lm_v, _, lm_a, _ = tiny_lms
    audio, score, _ = lm_mapping.pair_windows(lm_mapping.paired_pieces(2), 50, np.random.default_rng(0))
    h_a, h_v = _fitted_states(lm_a, lm_v, audio, score)
    fitted = {method: fit_mapping(lm_a, lm_v, paired_budget=2, method=method, per_piece=50, steps=300)
              for method in ("contrastive", "contrastive_mlp")}
    losses = {method: float(lm_mapping.in_piece_info_nce(m, h_a, h_v, per_piece=50)) for method, m in fitted.items()}
    assert losses["contrastive_mlp"] < losses["contrastive"], losses
    mlp = fitted["contrastive_mlp"]
    assert mlp.residual is not None and float(mlp.residual["w2"].abs().max()) > 0  # the residual learned something
    again = fit_mapping(lm_a, lm_v, paired_budget=2, method="contrastive_mlp", per_piece=50, steps=300)
    assert all(torch.equal(again.residual[k], mlp.residual[k]) for k in mlp.residual)
    mlp.save(tmp_path / "mlp.pt")
    loaded = Mapping.load(tmp_path / "mlp.pt")
    assert loaded.method == "contrastive_mlp" and torch.equal(loaded(h_a), mlp(h_a))
    assert not torch.allclose(mlp(h_a), h_a @ mlp.weight + mlp.bias)  # the residual is applied


def test_mapping_round_trips_and_retrieval_reports_chance(tiny_lms, tmp_path):
    lm_v, _, lm_a, _ = tiny_lms
    mapping = fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20)
    mapping.save(tmp_path / "m.pt")
    again = Mapping.load(tmp_path / "m.pt")
    assert torch.equal(again.weight, mapping.weight) and torch.equal(again.center, mapping.center)
    result = retrieval_accuracy(lm_a, lm_v, again, piece_ids=lm_mapping.held_out_ids()[:2], candidates=8)
    assert result["chance"] == 1 / 8 and result["queries"] == 16 and 0.0 <= result["accuracy"] <= 1.0
    sequence = retrieval_accuracy(lm_a, lm_v, again, piece_ids=lm_mapping.held_out_ids()[:2], candidates=8,
                                  compare="sequence")
    assert sequence["queries"] == 16 and 0.0 <= sequence["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="compare"):
        retrieval_accuracy(lm_a, lm_v, again, compare="dtw")
    with pytest.raises(ValueError, match="held-out"):
        fit_mapping(lm_a, lm_v, paired_budget=10_000)


def _saved_and_saved_before(mapping: Mapping, folder, *fields: str) -> tuple[Mapping, Mapping]:
    """``mapping`` saved and loaded, and the same file without ``fields`` (as saved before they were recorded)."""
    mapping.save(folder / "mapping.pt")
    blob = torch.load(folder / "mapping.pt", weights_only=True)
    for field in fields:
        del blob[field]
    torch.save(blob, folder / "old.pt")
    return Mapping.load(folder / "mapping.pt"), Mapping.load(folder / "old.pt")


def test_a_mapping_keeps_the_pooling_spans_it_was_fitted_with(tiny_lms, tmp_path, monkeypatch):
    """The frames averaged into a moment are part of a mapping: fitted on them, saved with it, read back (a file
    from before they were saved loads as 10 and 20), and used by retrieval; a span outside the window is refused."""
    lm_v, _, lm_a, _ = tiny_lms
    audio, score, _ = lm_mapping.pair_windows(lm_mapping.paired_pieces(2), 20, np.random.default_rng(0))
    short = fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20, audio_pool=3, score_pool=7)
    default = fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20)
    assert (short.audio_pool, short.score_pool) == (3, 7)
    assert (default.audio_pool, default.score_pool) == (lm_mapping.POOL_AUDIO, lm_mapping.POOL_SCORE)
    assert torch.allclose(short.center, lm_mapping.score_states(lm_v, score, pool=7, layer=lm_mapping.SCORE_LAYER).mean(0))
    assert not torch.allclose(short.center, default.center)
    loaded, old = _saved_and_saved_before(short, tmp_path, "audio_pool", "score_pool")
    assert (loaded.audio_pool, loaded.score_pool) == (3, 7) and torch.equal(loaded.weight, short.weight)
    assert (old.audio_pool, old.score_pool) == (10, 20)

    pools = []
    original = lm_mapping.score_states

    def spy(lm, windows, batch=256, pool=lm_mapping.POOL_SCORE, **kwargs):
        pools.append(pool)
        return original(lm, windows, batch, pool, **kwargs)

    monkeypatch.setattr(lm_mapping, "score_states", spy)
    retrieval_accuracy(lm_a, lm_v, loaded, piece_ids=lm_mapping.held_out_ids()[:1], candidates=4)
    assert pools == [7]
    for bad in ({"audio_pool": 0}, {"audio_pool": 41}, {"score_pool": 22}):
        with pytest.raises(ValueError, match="pool must be"):
            fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20, **bad)


def test_an_lm_gives_the_states_of_any_of_its_blocks(tiny_lms):
    """``hidden(x, layer)``: 0 the embedding, k the output of block k (the last block's, normed, is the LM's output),
    -1 the last block's, and a block the LM does not have is refused."""
    lm_v = tiny_lms[0]
    x = (torch.rand(3, 12, lm_v.config.input_dim, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    with torch.no_grad():
        assert torch.equal(lm_v.hidden(x, 0), lm_v.embed(x) + lm_v.position[:12])
        last = lm_v.hidden(x, lm_v.config.n_layers)
        assert torch.allclose(lm_v.norm(last), lm_v.hidden(x), atol=1e-5)
        assert not torch.allclose(last, lm_v.hidden(x, 0))
        assert torch.equal(lm_v.hidden(x, -1), last)  # counted from the last block
    for bad in (-lm_v.config.n_layers - 1, lm_v.config.n_layers + 1, True):
        with pytest.raises(ValueError, match="layer must be None"):
            lm_v.hidden(x, bad)


def test_a_mapping_keeps_the_layers_it_maps(tiny_lms, tmp_path, monkeypatch):
    """The blocks whose states are mapped are part of a mapping: fitted on them, saved with it, read back (a file
    from before they were saved loads as the LMs' outputs), used by retrieval; predictive keeps LM^V's output, which
    its head reads, and a block the LM does not have is refused."""
    lm_v, _, lm_a, _ = tiny_lms
    audio, score, _ = lm_mapping.pair_windows(lm_mapping.paired_pieces(2), 20, np.random.default_rng(0))
    inner = fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20, audio_layer=0, score_layer=1)
    output = fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20, audio_layer=None, score_layer=None)
    assert (inner.audio_layer, inner.score_layer) == (0, 1) and (output.audio_layer, output.score_layer) == (None, None)
    assert torch.allclose(inner.center, lm_mapping.score_states(lm_v, score, layer=1).mean(0))
    assert torch.allclose(output.center, lm_mapping.score_states(lm_v, score).mean(0))
    assert not torch.allclose(inner.center, output.center)
    loaded, old = _saved_and_saved_before(inner, tmp_path, "audio_layer", "score_layer")
    assert (loaded.audio_layer, loaded.score_layer) == (0, 1) and torch.equal(loaded.weight, inner.weight)
    assert (old.audio_layer, old.score_layer) == (None, None)

    layers = []
    for name in ("audio_states", "score_states"):
        original = getattr(lm_mapping, name)

        def spy(lm, windows, *args, _original=original, _name=name, **kwargs):
            layers.append((_name, kwargs.get("layer")))
            return _original(lm, windows, *args, **kwargs)

        monkeypatch.setattr(lm_mapping, name, spy)
    retrieval_accuracy(lm_a, lm_v, loaded, piece_ids=lm_mapping.held_out_ids()[:1], candidates=4)
    assert layers == [("audio_states", 0), ("score_states", 1)]
    monkeypatch.undo()
    predictive = fit_mapping(lm_a, lm_v, paired_budget=2, method="predictive", per_piece=20, steps=2,
                             unpaired_pieces=2, score_layer=1)
    assert predictive.score_layer is None
    with pytest.raises(ValueError, match="score_layer must be None"):
        fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20, score_layer=lm_v.config.n_layers + 1)


def test_lm_reward_wrapper_scores_the_agents_own_audio(tiny_lms):
    import gymnasium as gym

    import lmm_envs  # noqa: F401
    from agents.lm.reward import LMRewardWrapper
    from lmm_envs.music.corpus import piece_ids, piece_info

    mono = sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:1]
    lm_a = tiny_lms[2]
    env = LMRewardWrapper(gym.make("lmm/SightReading-v0", pieces=mono), lm_a)
    env.reset(seed=0)
    rewards = []
    for _ in range(30):
        _, reward, _, _, info = env.step(env.unwrapped.oracle_action())
        assert reward == pytest.approx(info["lm_reward"]) and "env_reward" in info
        rewards.append(reward)
    assert np.all(np.isfinite(rewards)) and np.std(rewards) > 0
    with pytest.raises(ValueError, match="playing env"):
        LMRewardWrapper(gym.make("lmm/ScoreFollowing-v0", pieces=mono), lm_a)


@pytest.mark.parametrize("cuda", [True, False])
def test_device_auto_takes_the_gpu_when_torch_sees_one(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == ("cuda" if cuda else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_the_pairs_only_reference_trains_its_lms_on_the_k_paired_pieces_alone(tmp_path, monkeypatch):
    from agents.lm import audio as lm_audio
    from agents.lm import symbolic as lm_symbolic
    from agents.pretrain import pretrain

    trained: list[list[str]] = []  # the pieces each LM is trained on, in order (mappings read through agents.lm.data)
    original = lm_training.train_frame_lm

    checkpoints: list = []

    def spy(sequences, *args, **kwargs):
        trained.append(list(read[-len(sequences):]))
        checkpoints.append(kwargs.get("checkpoint"))
        return original(sequences, *args, **kwargs)

    read: list[str] = []
    for module, name in ((lm_audio, "audio_frames"), (lm_symbolic, "score_frames")):
        frames = getattr(module, name)
        monkeypatch.setattr(module, name, lambda pid, *a, _o=frames, **k: (read.append(pid), _o(pid, *a, **k))[1])
    monkeypatch.setattr(lm_training, "train_frame_lm", spy)
    report = pretrain(tmp_path, size="tiny", lm_steps=5, budgets=(2,), methods=("regression", "predictive", "contrastive"),
                      pool_limit=2, progress=False, pairs_only=True, probe=False)
    rows = [(m["lms"], m["method"]) for m in report["mappings"]]
    assert rows == [("unpaired pools", "regression"), ("unpaired pools", "predictive"),
                    ("unpaired pools", "contrastive"), ("pairs only", "regression"), ("pairs only", "contrastive")]
    paired = corpus.paired_ids(2)
    assert trained[2:] == [paired, paired]  # the reference's LM^V, then its LM^A: the K paired pieces, nothing else
    assert not {pid for ids in trained[:2] for pid in ids} & set(corpus.piece_ids(split="train", pool="paired"))
    # the reference's LMs are checkpointed beside the pools' LMs, so that a second call resumes them
    assert [Path(c).name for c in checkpoints[2:]] == ["pairs_only_K2_lm_v.pt", "pairs_only_K2_lm_a.pt"]
    assert all(Path(c).is_file() for c in checkpoints)
    # and saved with their mappings in a folder laid out as the pools' one, which any --lm-dir reader takes
    reference = tmp_path / "pairs_only_K2"
    assert sorted(f.name for f in reference.iterdir()) == ["lm_a.pt", "lm_v.pt", "mapping_contrastive_K2.pt",
                                                           "mapping_regression_K2.pt"]
    pairs_only_v = FrameLM.load(reference / "lm_v.pt")
    assert not torch.equal(next(pairs_only_v.parameters()), next(FrameLM.load(tmp_path / "lm_v.pt").parameters()))


def test_lms_from_maps_trained_lms_with_other_settings_without_training_them_again(tmp_path, monkeypatch, capsys):
    from agents.pretrain import main, pretrain

    first = tmp_path / "first"
    pretrain(first, size="tiny", lm_steps=5, budgets=(2,), methods=("contrastive",), pool_limit=2, progress=False,
             probe=False)
    monkeypatch.setattr(lm_training, "train_frame_lm", lambda *a, **k: pytest.fail("--lms-from trained an LM"))
    second = tmp_path / "second"
    report = pretrain(second, budgets=(2,), methods=("contrastive",), progress=False, probe=False, audio_pool=1,
                      score_pool=1, lms_from=first)
    for name in ("lm_v", "lm_a"):  # the same LMs, now beside their new mapping
        assert torch.equal(next(FrameLM.load(second / f"{name}.pt").parameters()),
                           next(FrameLM.load(first / f"{name}.pt").parameters()))
    mapping = Mapping.load(second / "mapping_contrastive_K2.pt")
    assert (mapping.audio_pool, mapping.score_pool) == (1, 1)
    assert Mapping.load(first / "mapping_contrastive_K2.pt").audio_pool != 1  # the source folder is left alone
    earlier = json.loads((first / "report.json").read_text())
    assert report["lms_from"] == str(first) and report["lm_v"] == earlier["lm_v"] and report["size"] == "tiny"
    assert [(m["audio_pool"], m["score_pool"]) for m in report["mappings"]] == [(1, 1)]
    assert json.loads((second / "report.json").read_text())["mappings"][0]["accuracy"] == report["mappings"][0][
        "accuracy"]
    capsys.readouterr()
    assert main(["--lms-from", str(tmp_path / "none"), "--out", str(tmp_path / "third"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "lm_v.pt" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "third").exists()
    assert main(["--lms-from", str(first), "--out", str(first), "--quiet"]) == 2


def test_no_paired_budget_contains_a_retrieval_piece():
    from agents.lm.mapping import HELD_OUT, held_out_ids

    largest = len(corpus.paired_ids()) - HELD_OUT
    assert len(held_out_ids()) == HELD_OUT
    assert not set(held_out_ids()) & set(corpus.paired_ids(largest))


def test_ties_share_a_hit_and_distinct_moments_each_find_their_own():
    keys = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # two identical moments (a repeat) and another
    assert lm_mapping._hits(keys, keys) == pytest.approx(0.5 + 0.5 + 1.0)


def test_the_end_aligned_distance_ignores_tempo_and_what_came_before():
    from agents.lm.mapping import end_aligned_distance, events

    rng = np.random.default_rng(0)
    chords = (rng.random((6, 88)) < 0.05).astype(np.float32)
    chords[:, 40] = 1.0  # no empty chord
    roll = np.zeros((30, 88), np.float32)
    roll[::5] = chords  # one chord every 5 frames
    slow = np.zeros((60, 88), np.float32)
    slow[::10] = chords  # the same chords at half the tempo
    assert np.array_equal(events(roll, 0.5), events(slow, 0.5))
    earlier = (rng.random((4, 88)) < 0.05).astype(np.float32)
    assert end_aligned_distance(np.vstack([earlier, chords]), chords) == pytest.approx(0.0, abs=1e-9)
    assert end_aligned_distance(chords, chords[::-1]) > 0.3  # the same chords in another order
    assert end_aligned_distance(chords[:0], chords) == 1.0


def test_timing_tells_apart_two_moments_inside_the_same_held_chord():
    from agents.lm.mapping import (
        _sequence_distance,
        age_gaps,
        events,
        last_event_age,
        own_share,
        timed_similarity,
    )

    roll = np.zeros((40, 88), np.float32)
    roll[[0, 10, 20], [40, 43, 47]] = 1.0  # three single notes, the last held for 20 frames
    early, late = roll[:25], roll[:38]  # two moments inside the last note: 4 and 17 frames after it began
    assert (last_event_age(early, 0.5), last_event_age(late, 0.5), last_event_age(roll[:0], 0.5)) == (4, 17, 0)
    assert last_event_age(np.zeros((7, 88), np.float32), 0.5) == 7  # no event: as old as the window
    moments = [early, late]
    distance = _sequence_distance([events(m, 0.5) for m in moments], [events(m, 0.5) for m in moments])
    assert torch.equal(distance, torch.zeros(2, 2, dtype=torch.float64))  # chords alone: the two moments tie
    gap = age_gaps(moments, moments, 0.5, 0.5)
    assert torch.equal(gap, torch.tensor([[0.0, 13.0], [13.0, 0.0]], dtype=torch.float64))
    assert own_share(timed_similarity(distance, gap, 0.0)) == pytest.approx(1.0)  # half a hit each
    assert own_share(timed_similarity(distance, gap, 0.01)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="timing"):
        timed_similarity(distance, gap, -0.1)


def test_h_hears_a_window_as_it_would_live_nothing_after_its_end():
    from agents.lm.transcription import KeyNet, KeyNetConfig

    h = KeyNet(KeyNetConfig(refine_steps=20))
    pixels = np.random.default_rng(0).integers(0, 255, size=(60, 75), dtype=np.uint8)
    down, onsets = lm_mapping.heard_down(h, pixels, 45, 40)
    changed = pixels.copy()
    changed[46:] = 255 - changed[46:]  # the future, and only the future, differs
    assert down.shape == onsets.shape == (40, 88)
    for same, other in zip((down, onsets), lm_mapping.heard_down(h, changed, 45, 40), strict=True):
        assert np.array_equal(same, other)
    _, whole = h.transcribe(pixels)  # the frames inside the window, away from its ends, as the whole piece hears them
    assert np.allclose(down[1:-1], whole[7:45], atol=1e-6)
    assert lm_mapping.heard_down(h, pixels, 5, 40)[0].shape == (6, 88)  # at the start: what there is


def test_motion_retrieval_refuses_an_unknown_comparison():
    with pytest.raises(ValueError, match="compare"):
        lm_mapping.motion_retrieval_accuracy(None, compare="dtw")


def test_a_perfect_transcription_places_each_onset_where_the_performance_reaches_it(tiny_lms):
    score = np.zeros((6, 88), dtype=np.float32)
    score[0, 40] = score[2, 43] = score[3, 47] = score[5, 40] = 1.0
    slow = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])  # half the nominal tempo
    played = lm_mapping.performed_onsets(score, slow)
    assert played.shape == (12, 88)
    assert [tuple(np.flatnonzero(f)) for f in played if f.any()] == [(40,), (43,), (47,), (40,)]
    assert list(np.flatnonzero(played.any(1))) == [0, 4, 6, 10]
    skipping = np.array([0, 3, 3, 5])  # a frame that jumps two score frames sounds both of their onsets
    assert list(np.flatnonzero(lm_mapping.performed_onsets(score, skipping)[1])) == [43, 47]
    assert np.array_equal(lm_mapping.performed_onsets(score, np.arange(6)), score)
    lm_v = tiny_lms[0]
    result = lm_mapping.transcription_retrieval(lm_v, spans=(5, 20), piece_ids=lm_mapping.held_out_ids()[:2],
                                                candidates=8)
    assert set(result) == {5, 20} and all(0.0 <= v <= 1.0 for v in result.values())
    first = lm_mapping.transcription_retrieval(lm_v, spans=(5,), piece_ids=lm_mapping.held_out_ids()[:1],
                                               candidates=8, layer=1)
    assert 0.0 <= first[5] <= 1.0
    with pytest.raises(ValueError, match="layer must be None"):
        lm_mapping.transcription_retrieval(lm_v, piece_ids=lm_mapping.held_out_ids()[:1], layer=5)
