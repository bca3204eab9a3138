"""Red-team round, the user's files and the cache: text that is not UTF-8, audio with NaN samples, an alignment
outside the performance, a score with an impossible tempo, a cache entry with arrays missing."""

from __future__ import annotations

import numpy as np
import pytest

from lmm_envs.cli import main
from lmm_envs.errors import AlignmentError, ConfigError, ScoreLoadError
from lmm_envs.music.io import load_alignment_csv, load_score
from lmm_envs.pieces import load_piece, load_piece_list


def write_midi(path, onsets, bpm=120.0):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(80, 60 + i % 12, t, t + 0.4) for i, t in enumerate(onsets)]
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


@pytest.fixture
def own_piece(tmp_path):
    write_midi(tmp_path / "score.mid", [i * 0.5 for i in range(16)])
    write_midi(tmp_path / "perf.mid", [i * 0.55 for i in range(16)])
    (tmp_path / "align.csv").write_text("performance_time,score_time\n0,0\n8.8,8\n")
    return tmp_path


def cli(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr().err


def test_a_piece_list_that_is_not_utf8_is_one_error(tmp_path, capsys):
    (tmp_path / "list.csv").write_bytes("score,performance,alignment\nm\xe9lodie.mid,,\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_piece_list(tmp_path / "list.csv")
    code, err = cli(capsys, "evaluate", "--pieces", str(tmp_path / "list.csv"), "--quiet")
    assert code == 2 and "not UTF-8" in err and "Traceback" not in err


def test_an_alignment_that_is_not_utf8_is_one_error(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"performance_time,score_time\n0,0\n1,1\n\xff\xfe\n")
    with pytest.raises(AlignmentError, match="not UTF-8"):
        load_alignment_csv(tmp_path / "a.csv")


def test_a_utf8_piece_list_with_a_byte_order_mark_reads(own_piece):
    (own_piece / "list.csv").write_text("\ufeffscore,performance,alignment\nscore.mid,perf.mid,align.csv\n")
    assert load_piece_list(own_piece / "list.csv")[0]["score"].endswith("score.mid")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_audio_with_non_finite_samples_is_refused(own_piece, bad):
    import soundfile as sf

    audio = np.zeros(22050 * 9, dtype=np.float32)
    audio[1000] = bad
    sf.write(own_piece / "take.wav", audio, 22050, subtype="FLOAT")
    with pytest.raises(ScoreLoadError, match="NaN or infinite samples"):
        load_piece(own_piece / "score.mid", own_piece / "take.wav", own_piece / "align.csv")


def test_an_alignment_outside_the_performance_is_refused_not_scored_as_nan(own_piece, capsys):
    (own_piece / "late.csv").write_text("performance_time,score_time\n100,0\n108.8,8\n")
    with pytest.raises(AlignmentError, match="performance_time must be seconds of this performance"):
        load_piece(own_piece / "score.mid", own_piece / "perf.mid", own_piece / "late.csv")
    (own_piece / "list.csv").write_text("score,performance,alignment\nscore.mid,perf.mid,late.csv\n")
    code, err = cli(capsys, "evaluate", "--pieces", str(own_piece / "list.csv"), "--quiet")
    assert code == 2 and "late.csv" in err
    assert load_piece(own_piece / "score.mid", own_piece / "perf.mid", own_piece / "align.csv").n_frames > 0


def test_a_tempo_out_of_range_names_the_file(tmp_path):
    path = write_midi(tmp_path / "fast.mid", [0.0, 0.1, 0.2], bpm=1000.0)
    with pytest.raises(ScoreLoadError, match="fast.mid.*tempo 1000 bpm"):
        load_score(path)


def test_a_cache_entry_with_arrays_missing_is_rebuilt(tmp_path):
    from lmm_envs.audio.cache import Cache
    from lmm_envs.music.corpus import piece_ids
    from lmm_envs.pieces import prepare_piece

    cache = Cache(tmp_path / "cache")
    pid = piece_ids(split="test")[0]
    good = prepare_piece(pid, 1.0, 5, cache=cache)
    entries = list((tmp_path / "cache").rglob("piece-*.lmmc"))
    assert len(entries) == 1
    fresh = Cache(tmp_path / "cache")  # a new process: nothing in memory
    fresh.put(entries[0].stem, {"spectrogram": np.zeros((2, 2), dtype=np.float32)})  # a valid digest, arrays gone
    from lmm_envs import pieces

    pieces._MEMORY.clear()
    pieces._KEYS.clear()
    again = prepare_piece(pid, 1.0, 5, cache=fresh)
    assert fresh.rebuilt == 1 and np.array_equal(again.spectrogram, good.spectrogram)
