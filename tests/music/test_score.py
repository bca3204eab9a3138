import numpy as np
import pytest

from lmm_envs.errors import AlignmentError, ScoreLoadError
from lmm_envs.music.score import Alignment, Note, Performance, Score, TempoMap


def test_tempo_map_converts_both_ways_across_changes():
    tempo = TempoMap(np.array([0.0, 4.0]), np.array([60.0, 120.0]))
    assert tempo.beats_to_seconds(4.0) == pytest.approx(4.0)
    assert tempo.beats_to_seconds(6.0) == pytest.approx(5.0)
    beats = np.linspace(0, 10, 41)
    assert np.allclose(tempo.seconds_to_beats(tempo.beats_to_seconds(beats)), beats)


@pytest.mark.parametrize("bpm", [1.0, 1000.0, float("nan")])
def test_absurd_tempo_is_refused(bpm):
    with pytest.raises(ScoreLoadError, match="bpm"):
        TempoMap.constant(bpm)


def test_score_sorts_notes_and_fixes_zero_length(small_score):
    s = Score.from_notes([Note(64, 1.0, 0.0), Note(60, 0.0, 1.0), Note(67, 0.0, 1.0)])
    assert s.onset.tolist() == [0.0, 0.0, 1.0]
    assert s.pitch.tolist() == [60, 67, 64]
    assert s.duration.min() > 0
    assert small_score.end_seconds == pytest.approx(11 * 60 / 90)


def test_score_without_notes_is_refused():
    with pytest.raises(ScoreLoadError, match="no notes"):
        Score.from_notes([])


def test_select_parts_renumbers(small_score):
    two = Score.from_notes([Note(60, 0, 1, part=0), Note(48, 0, 1, part=1), Note(40, 1, 1, part=2)])
    bass = two.select_parts([2])
    assert bass.pitch.tolist() == [40] and bass.part.tolist() == [0]


def test_performance_midi_round_trip_keeps_notes():
    perf = Performance([60, 64], [0.0, 0.5], [0.4, 1.0], [100, 50], [0, 1])
    pm = perf.to_pretty_midi()
    assert len(pm.instruments) == 2
    notes = sorted((n.start, n.pitch, n.velocity) for i in pm.instruments for n in i.notes)
    assert notes == [(0.0, 60, 100), (0.5, 64, 50)]


def test_alignment_interpolates_and_inverts():
    a = Alignment([0.0, 2.0, 4.0], [0.0, 1.0, 3.0])
    assert a.score_at(1.0) == pytest.approx(0.5)
    assert a.score_at(3.0) == pytest.approx(2.0)
    assert a.performance_at(2.0) == pytest.approx(3.0)
    s = np.linspace(0, 3, 13)
    assert np.allclose(a.score_at(a.performance_at(s)), s)


def test_alignment_inverse_of_a_flat_segment_is_its_start():
    a = Alignment([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 1.0, 2.0])  # a held note
    assert a.performance_at(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "perf,score,message",
    [([0.0, 1.0, 0.5], [0, 1, 2], "strictly increase"), ([0, 1, 2], [0, 2, 1], "must not decrease"),
     ([0, np.nan], [0, 1], "NaN"), ([0.0], [0.0], "at least two")],
)
def test_bad_alignments_are_refused(perf, score, message):
    with pytest.raises(AlignmentError, match=message):
        Alignment(perf, score)
