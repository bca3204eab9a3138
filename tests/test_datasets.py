"""A folder of real performances read as a dataset (match files, performance + alignment pairs, pieces.csv)."""

import pytest

from lmm_envs.datasets import find_pieces
from lmm_envs.errors import ConfigError
from lmm_envs.pieces import load_piece_list
from tests.music.real_files import write_match, write_musicxml

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:partitura")


def _vienna_like(root):
    (root / "musicxml").mkdir()
    (root / "match").mkdir()
    score = write_musicxml(root / "musicxml" / "Piece.musicxml")
    for k in (1, 2):
        write_match(root / "match" / f"Piece_p0{k}.match", score, [0.5 + 0.4 * k + 0.5 * i for i in range(9)])
    return score


def test_match_files_find_their_musicxml_by_name(tmp_path):
    score = _vienna_like(tmp_path)
    rows = find_pieces(tmp_path)
    assert [r["alignment"].rsplit("/", 1)[-1] for r in rows] == ["Piece_p01.match", "Piece_p02.match"]
    assert all(r["score"] == str(score) and r["performance"] is None for r in rows)


def test_a_dataset_folder_runs_in_an_env(tmp_path):
    import gymnasium as gym

    from lmm_envs.errors import TempoWarning

    _vienna_like(tmp_path)  # both performances at 3.5x the score's marked tempo: one warning says so for both
    with pytest.warns(TempoWarning, match="2 of 2 pieces are played far") as caught:
        env = gym.make("lmm/ScoreFollowing-v0", pieces=str(tmp_path))
    assert len([w for w in caught if issubclass(w.category, TempoWarning)]) == 1
    names = sorted(s.id for s in env.unwrapped.sources)
    assert names == ["Piece_p01", "Piece_p02"]
    obs, info = env.reset(seed=0, options={"piece": "Piece_p02"})
    assert info["piece_id"] == "Piece_p02"


def test_performances_with_alignments_of_the_same_name(tmp_path, midi_file):
    import shutil

    shutil.copy(midi_file, tmp_path / "Song.mid")
    shutil.copy(midi_file, tmp_path / "Song_take1.mid")
    (tmp_path / "Song_take1.txt").write_text("0.0 0\n1.0 1\n")
    rows = find_pieces(tmp_path)
    assert rows == [{"score": str(tmp_path / "Song.mid"), "performance": str(tmp_path / "Song_take1.mid"),
                     "alignment": str(tmp_path / "Song_take1.txt")}]


def test_pieces_csv_in_a_folder_wins_and_nominal_tempo_applies_to_all(tmp_path):
    _vienna_like(tmp_path)
    (tmp_path / "pieces.csv").write_text("score,performance,alignment\nmatch/Piece_p01.match,,\n")
    rows = load_piece_list(tmp_path, nominal_tempo="performance")
    assert len(rows) == 1 and rows[0]["nominal_tempo"] == "performance"


def test_an_empty_or_missing_folder_says_what_a_dataset_needs(tmp_path):
    with pytest.raises(ConfigError, match="holds no pieces"):
        find_pieces(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        find_pieces(tmp_path / "nowhere")
