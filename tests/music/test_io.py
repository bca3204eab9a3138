import numpy as np
import pytest

from lmm_envs.errors import AlignmentError, LMMError, ScoreLoadError
from lmm_envs.music.corpus import source_path
from lmm_envs.music.io import load_alignment_csv, load_performance_midi, load_score, save_alignment_csv
from lmm_envs.music.score import Alignment


def test_loads_a_bach_chorale_from_musicxml():
    score = load_score(source_path("bach/bwv66.6"))
    assert score.part_names == ("Soprano", "Alto", "Tenor", "Bass")
    assert score.n_notes > 100
    assert score.fermatas.size >= 4  # chorale phrases end at fermatas
    assert score.pitch.min() >= 36 and score.pitch.max() <= 84  # SATB ranges


def test_loads_a_fiddle_tune_from_abc():
    from lmm_envs.music.corpus import piece_ids

    pid = piece_ids(collection="ryans")[0]
    score = load_score(source_path(pid))
    assert score.n_parts == 1 and score.n_notes > 10


def test_midi_score_keeps_beats_tempo_and_parts(midi_file, small_score):
    score = load_score(midi_file)
    assert score.n_parts == 2
    assert score.tempo.bpm[0] == pytest.approx(90.0, rel=1e-4)  # MIDI stores integer microseconds per beat
    top = score.select_parts([0])
    assert np.allclose(top.onset, small_score.onset, atol=1e-3)
    assert top.pitch.tolist() == small_score.pitch.tolist()


def test_midi_performance_is_in_seconds(midi_file):
    perf = load_performance_midi(midi_file)
    assert perf.n_notes == 22
    assert perf.onset.max() == pytest.approx(10 * 60 / 90, abs=1e-3)


@pytest.mark.parametrize(
    "name,content,message",
    [("corrupt.mid", b"MThd\x00\x00\x00\x06garbage-bytes", "not a readable MIDI"),
     ("empty.mid", b"", "empty"),
     ("bad.musicxml", b"<score-partwise><part id='P1'><measure><note><pitch>", "cannot parse"),
     ("score.txt", b"hello", "unsupported score format")],
)
def test_bad_score_files_raise_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ScoreLoadError, match=message) as err:
        load_score(path)
    assert "\n" not in str(err.value)


def test_midi_without_notes_is_refused(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.write(str(tmp_path / "silent.mid"))
    with pytest.raises(ScoreLoadError, match="no pitched notes"):
        load_score(tmp_path / "silent.mid")


def test_musicxml_with_only_rests_is_refused(tmp_path):
    from music21 import meter, note, stream

    s = stream.Score()
    p = stream.Part()
    m = stream.Measure()
    m.append(meter.TimeSignature("4/4"))
    m.append(note.Rest(quarterLength=4))
    p.append(m)
    s.append(p)
    path = tmp_path / "rests.musicxml"
    s.write("musicxml", fp=str(path))
    with pytest.raises(ScoreLoadError, match="no notes"):
        load_score(path)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(LMMError, match="not found"):
        load_score(tmp_path / "nope.mid")


def test_alignment_csv_round_trip(tmp_path):
    a = Alignment([0.0, 1.5, 3.0], [0.0, 1.0, 2.0])
    save_alignment_csv(a, tmp_path / "a.csv")
    b = load_alignment_csv(tmp_path / "a.csv")
    assert np.allclose(b.performance_time, a.performance_time) and np.allclose(b.score_time, a.score_time)


@pytest.mark.parametrize(
    "text,message",
    [("", "is empty"), ("1.0,2.0\n2.0,3.0\n", "lacks the header"),
     ("performance_time,score_time\n", "no rows"),
     ("performance_time,score_time\n0,0\n1,2\n2,1\n", "must not decrease"),
     ("performance_time,score_time\n0,0\n1,nan\n", "NaN"),
     ("performance_time,score_time\n0,0\n1,x\n", "not two numbers")],
)
def test_bad_alignment_csvs(tmp_path, text, message):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(AlignmentError, match=message):
        load_alignment_csv(path)


def test_merging_ties_in_place_gives_the_same_score_and_leaves_a_callers_stream_alone():
    from music21 import converter

    from lmm_envs.music.io import score_from_music21_stream

    path = source_path("bach/bwv1.6")  # tied notes across bar lines in several voices
    parsed = converter.parse(str(path))
    tied = sum(1 for n in parsed.recurse().notes if n.tie is not None)
    assert tied > 0
    copied = score_from_music21_stream(parsed, title="x")
    assert sum(1 for n in parsed.recurse().notes if n.tie is not None) == tied  # the default leaves it as it was
    in_place = score_from_music21_stream(converter.parse(str(path)), title="x", in_place=True)
    for name in ("pitch", "onset", "duration", "velocity", "part", "fermatas", "measures"):
        assert np.array_equal(getattr(copied, name), getattr(in_place, name)), name
    assert copied.n_notes < tied + copied.n_notes  # ties were merged: fewer notes than written heads
