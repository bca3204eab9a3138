import numpy as np
import pytest

from lmm_envs import load_piece, prepare_piece
from lmm_envs.audio.features import FPS
from lmm_envs.audio.wav import read_audio, write_audio
from lmm_envs.errors import ConfigError, ScoreLoadError, UnknownPieceError
from lmm_envs.music.io import save_alignment_csv
from lmm_envs.music.score import Alignment


def test_prepared_piece_is_deterministic_and_cached():
    from lmm_envs import pieces

    a = prepare_piece("bach/bwv66.6", 1.0, seed=11)
    pieces._MEMORY.clear()
    b = prepare_piece("bach/bwv66.6", 1.0, seed=11)  # from disk this time
    assert a is not b and a.spectrogram.tobytes() == b.spectrogram.tobytes()
    assert a.n_frames == pytest.approx(a.performance.end * FPS, abs=FPS)
    assert np.all(np.diff(a.score_positions) >= 0)
    assert a.onset_performance_times.size == a.score.unique_onsets().size


def test_a_kept_piece_is_found_by_name_or_synth_instance_and_only_for_the_same_arguments():
    from lmm_envs import pieces
    from lmm_envs.audio.synth import make_synth

    a = prepare_piece("bach/bwv66.6", 1.0, seed=12)
    assert prepare_piece("bach/bwv66.6", 1.0, seed=12, synth=make_synth("harmonic")) is a
    assert prepare_piece("bach/bwv66.6", 0.5, seed=12) is not a
    assert prepare_piece("bach/bwv66.6", 1.0, seed=13) is not a
    pieces._MEMORY.clear()  # evicted: the name no longer finds it, the piece is read back
    assert prepare_piece("bach/bwv66.6", 1.0, seed=12) is not a


def test_unknown_piece_id():
    with pytest.raises(UnknownPieceError):
        prepare_piece("ryans/NoSuchReel")


def test_load_piece_renders_a_performance_when_none_is_given(midi_file):
    piece = load_piece(midi_file)
    assert piece.id == "score" and piece.performance is not None and piece.n_frames > 0


def test_load_piece_with_midi_performance_and_alignment(tmp_path, midi_file):
    save_alignment_csv(Alignment([0.0, 1.0], [0.0, 1.0]), tmp_path / "a.csv")
    piece = load_piece(midi_file, performance=midi_file, alignment=tmp_path / "a.csv")
    assert piece.score_positions[FPS] == pytest.approx(1.0)


def test_load_piece_with_an_audio_recording(tmp_path, midi_file):
    rendered = load_piece(midi_file, expressiveness=0.0)
    from lmm_envs.audio.synth import HarmonicSynth

    wav = write_audio(tmp_path / "take.wav", HarmonicSynth().render(rendered.performance), 22050)
    write_audio(tmp_path / "take44.flac", np.repeat(read_audio(wav), 2), 44100)  # resampled on read
    save_alignment_csv(Alignment([0.0, 5.0], [0.0, 5.0]), tmp_path / "a.csv")
    for name in ("take.wav", "take44.flac"):
        piece = load_piece(midi_file, performance=tmp_path / name, alignment=tmp_path / "a.csv")
        assert piece.performance is None
        assert abs(piece.n_frames - rendered.n_frames) <= 2


def test_real_performance_needs_an_alignment(midi_file):
    with pytest.raises(ConfigError, match="alignment"):
        load_piece(midi_file, performance=midi_file)


def test_bad_audio_file(tmp_path, midi_file):
    (tmp_path / "a.csv").write_text("performance_time,score_time\n0,0\n1,1\n")
    (tmp_path / "x.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ScoreLoadError, match="not a readable audio"):
        load_piece(midi_file, performance=tmp_path / "x.wav", alignment=tmp_path / "a.csv")


def test_overlapping_and_zero_length_notes_play_in_every_env():
    """Two parts, a note overlapping another of the same pitch, a zero-length grace note: every env plays it."""
    import gymnasium as gym

    import lmm_envs  # noqa: F401
    from lmm_envs.music.score import Score, TempoMap

    score = Score(pitch=[72, 72, 74, 76, 60, 60, 55], onset=[0.0, 0.5, 0.5, 1.0, 0.0, 0.25, 1.0],
                  duration=[2.0, 1.0, 0.0, 1.0, 1.0, 1.0, 2.0], velocity=[80] * 7, part=[0, 0, 0, 0, 1, 1, 1],
                  tempo=TempoMap.constant(100.0), title="overlaps")
    for env_id, kwargs in (("lmm/ScoreFollowing-v0", {}), ("lmm/Accompaniment-v0", {}),
                           ("lmm/SightReading-v0", {"polyphony": "poly"}), ("lmm/PlayByEar-v0", {"polyphony": "poly"})):
        env = gym.make(env_id, pieces=[score], **kwargs)
        obs, _ = env.reset(seed=0)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action()
                                                                 if hasattr(env.unwrapped, "oracle_action")
                                                                 else env.action_space.sample())
            assert env.observation_space.contains(obs) and np.isfinite(reward)
            done = terminated or truncated
        assert "episode_metrics" in info
