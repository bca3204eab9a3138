"""Real-performance formats: MusicXML through partitura, match files, beat annotations, nominal tempo."""

import warnings

import numpy as np
import pytest

from lmm_envs.errors import AlignmentError, ConfigError, LMMWarning, ScoreLoadError
from lmm_envs.music.annotations import load_beat_annotations, monotonic_points
from lmm_envs.music.match import load_match
from lmm_envs.music.musicxml import load_musicxml
from lmm_envs.pieces import load_piece
from tests.music.real_files import write_match, write_musicxml

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:partitura")


def test_musicxml_pickup_starts_at_zero_and_tempo_marks_make_the_tempo_map(tmp_path):
    read = load_musicxml(write_musicxml(tmp_path / "s.musicxml"))
    score = read.score
    assert score.onset[0] == 0.0 and score.pitch[0] == 67  # the pickup is what is played first
    assert score.onset.tolist() == [0, 1, 3, 5, 7, 9, 11, 13, 15]
    assert score.tempo.bpm.tolist() == pytest.approx([60, 120]) and score.tempo.beats.tolist() == [0, 13]
    assert score.measures.tolist() == [0, 1, 5, 9, 13]
    assert read.note_ids[0] == "n0"


def test_musicxml_repeats_are_unfolded_as_played(tmp_path):
    score = load_musicxml(write_musicxml(tmp_path / "r.musicxml", repeat=True, second_tempo=None)).score
    assert score.n_notes == 1 + 2 * 2 + 3 * 2  # the repeated bar twice
    assert score.onset.tolist() == [0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]


def test_broken_musicxml_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.musicxml"
    bad.write_text("<score-partwise><part id='P1'><measure><note>")
    with pytest.raises(ScoreLoadError, match="cannot parse") as err:
        load_musicxml(bad)
    assert "\n" not in str(err.value)


def test_match_file_gives_performance_and_median_onset_alignment(tmp_path):
    score = write_musicxml(tmp_path / "s.musicxml")
    onsets = [0.5 + 0.5 * k for k in range(9)]
    match = load_match(write_match(tmp_path / "s_p01.match", score, onsets))
    assert match.performance.n_notes == 9 and match.matched == 9
    assert match.alignment.performance_time.tolist() == pytest.approx(onsets)
    assert match.alignment.beats.tolist() == [0, 1, 3, 5, 7, 9, 11, 13, 15]


def test_match_notes_played_out_of_order_are_dropped_not_fatal(tmp_path):
    score = write_musicxml(tmp_path / "s.musicxml")
    onsets = [0.5 + 0.5 * k for k in range(9)]
    order = [0, 1, 2, 3, 5, 4, 6, 7, 8]  # two notes swapped: their onsets contradict the score's order
    match = load_match(write_match(tmp_path / "s.match", score, onsets, order=order))
    assert np.all(np.diff(match.alignment.performance_time) > 0)
    assert match.alignment.beats.size == 8


def test_load_piece_from_musicxml_and_match_plays_the_match_notes(tmp_path):
    score = write_musicxml(tmp_path / "s.musicxml")
    match = write_match(tmp_path / "s_p01.match", score, [0.5 + 0.5 * k for k in range(9)])
    piece = load_piece(score, alignment=match, nominal_tempo="performance")
    assert piece.id == "s_p01" and piece.performance.n_notes == 9
    assert piece.duration >= 4.5
    # score onset k sits at performance time onsets[k]
    assert piece.onset_performance_times == pytest.approx([0.5 + 0.5 * k for k in range(9)], abs=1e-6)
    alone = load_piece(match)  # the match file holds its own score
    assert alone.score.n_notes == 9 and alone.alignment.performance_time.size == 9


def test_an_alignment_without_a_performance_is_one_clear_line(tmp_path, midi_file):
    csv = tmp_path / "a.csv"
    csv.write_text("performance_time,score_time\n0,0\n1,1\n")
    ann = tmp_path / "a.txt"
    ann.write_text("0.0\n0.5\n")
    for alignment in (csv, ann):
        with pytest.raises(ConfigError, match="alignment was given without a performance"):
            load_piece(midi_file, alignment=alignment)


def test_match_file_with_a_midi_score_says_what_to_give(tmp_path, midi_file):
    score = write_musicxml(tmp_path / "s.musicxml")
    match = write_match(tmp_path / "s.match", score, [0.5 + 0.5 * k for k in range(9)])
    with pytest.raises(ConfigError, match="MusicXML it was made from"):
        load_piece(midi_file, alignment=match)


def test_performer_far_from_the_marked_tempo_gets_one_warning_and_an_option(tmp_path):
    score = write_musicxml(tmp_path / "s.musicxml", second_tempo=None)  # 60 bpm throughout: 16 beats in 16 s
    fast = [0.25 * k for k in range(1)] + [0.25 * b for b in (1, 3, 5, 7, 9, 11, 13, 15)]  # played at 240 bpm
    match = write_match(tmp_path / "fast.match", score, [0.05 + t for t in fast])
    with pytest.warns(LMMWarning, match=r"4\.00x the score's nominal tempo") as caught:
        piece = load_piece(score, alignment=match)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert piece.score.tempo.bpm[0] == pytest.approx(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LMMWarning)
        own = load_piece(score, alignment=match, nominal_tempo="performance")
    assert own.score.tempo.bpm[0] == pytest.approx(240, rel=0.02)
    ratio = np.diff(own.alignment.score_time) / np.diff(own.alignment.performance_time)
    assert np.median(ratio) == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ConfigError, match="nominal_tempo"):
        load_piece(score, alignment=match, nominal_tempo="fast")


@pytest.mark.parametrize("text,beats", [
    ("0.5\n1.0\n1.5\n", [0, 1, 2]),
    ("# beats of a performance\ntime beat\n0.5 0\n1.0 1\n2.0 3\n", [0, 1, 3]),
    ("0.5,0\n1.0,0.5\n", [0, 0.5]),
])
def test_beat_annotations_one_or_two_columns(tmp_path, text, beats):
    path = tmp_path / "p.txt"
    path.write_text(text)
    ann = load_beat_annotations(path)
    assert ann.beats.tolist() == beats


@pytest.mark.parametrize("text,message", [
    ("0.5\n", "at least two"),
    ("0.5 0\n0.4 1\n", "strictly increase"),
    ("0.5 0\n1.0\n", "columns"),
    ("0.5 0\n1.0 x\n", "line 2 is not numbers"),
    ("0.5 1\n1.0 0\n", "must not decrease"),
])
def test_bad_beat_annotations_are_one_clear_line(tmp_path, text, message):
    path = tmp_path / "p.txt"
    path.write_text(text)
    with pytest.raises(AlignmentError, match=message) as err:
        load_beat_annotations(path)
    assert "\n" not in str(err.value)


def test_piece_from_midi_performance_and_beat_annotations(tmp_path, midi_file):
    ann = tmp_path / "beats.txt"
    ann.write_text("\n".join(f"{0.5 * k:.3f} {k}" for k in range(10)))
    piece = load_piece(midi_file, performance=midi_file, alignment=ann)
    assert piece.alignment.score_time[1] == pytest.approx(piece.score.tempo.beats_to_seconds(1.0))
    with pytest.raises(ConfigError, match="unsupported format"):
        load_piece(midi_file, performance=midi_file, alignment=tmp_path / "beats.json")


def test_monotonic_points_keep_the_longest_consistent_run():
    points = monotonic_points([0.0, 1.0, 0.5, 2.0, 3.0], [0, 1, 2, 3, 4])
    assert points.performance_time.size == 4 and np.all(np.diff(points.performance_time) > 0)
    assert {0.0, 2.0, 3.0} <= set(points.performance_time.tolist())
    with pytest.raises(AlignmentError, match="fewer than two"):
        monotonic_points([1.0], [0.0])
