"""Real performances from the command line: a dataset folder evaluated, warned about, and drawn."""

import json

import pytest

from lmm_envs.cli import main
from tests.music.real_files import write_match, write_musicxml

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:partitura")


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    score = write_musicxml(root / "Tune.musicxml", second_tempo=None, bars=8)  # 60 bpm, 33 beats
    beats = [0] + [2 * j - 1 for j in range(1, 1 + 2 * 8)]  # the pickup, then half notes
    write_match(root / "Tune_p01.match", score, [0.2 + 1.0 * b for b in beats])  # at the marked tempo
    write_match(root / "Tune_p02.match", score, [0.2 + 0.25 * b for b in beats])  # 4x faster
    return root


def test_evaluate_a_dataset_folder_warns_once_per_far_performance(dataset, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--agent", "keep_tempo", "--pieces", str(dataset), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "Tune_p02" in warnings[0] and "--nominal-tempo performance" in warnings[0]
    assert "4.00x" in warnings[0]
    result = json.loads(out.read_text())
    assert [e["piece_id"] for e in result["episodes"]] == ["Tune_p01", "Tune_p02"]
    assert result["track"] == "custom" and all(e["steps"] > 10 for e in result["episodes"])


def test_nominal_tempo_performance_from_the_cli(dataset, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--agent", "keep_tempo", "--pieces", str(dataset), "--nominal-tempo", "performance",
                 "--out", str(out), "--quiet"]) == 0
    assert "warning:" not in capsys.readouterr().err
    fast = json.loads(out.read_text())["episodes"][1]["metrics"]
    assert fast["within_300ms"] > 0.8  # at its own tempo, keeping the tempo follows it


def test_render_plot_draws_one_episode(dataset, tmp_path, capsys):
    plot = tmp_path / "episode.png"
    assert main(["render", "--pieces", str(dataset), "--piece", "Tune_p01", "--agent", "oracle", "--plot", str(plot),
                 "--quiet"]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "within 300 ms 1.00" in capsys.readouterr().out
    # a performer 4x the marked tempo outruns even the oracle's pointer, which the figure shows to the end
    assert main(["render", "--pieces", str(dataset), "--piece", "Tune_p02", "--agent", "oracle", "--plot", str(plot),
                 "--quiet"]) == 0
    assert "within 300 ms 1.00" not in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["render", "--plot", "x.pdf"], "writes a PNG"),
    (["render"], "give --out"),
    (["render", "--plot", "x.png", "--out", "x.txt"], "cannot write '.txt'"),
    (["render", "--env", "lmm/SightReading-v0", "--plot", "x.png"], "draws a score follower"),
])
def test_render_plot_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not list(tmp_path.iterdir())  # nothing written

def test_expressive_statistics_of_a_folder(dataset, tmp_path, capsys):
    from lmm_envs.music.expressive_stats import main as stats_main

    plot = tmp_path / "tempo.png"
    assert stats_main([str(dataset), "--plot", str(plot), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| tempo_spread |" in out and "| statistic | real | vienna | gentle |" in out
    assert plot.stat().st_size > 1000


def test_real_performance_table_per_agent_and_per_piece(dataset, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    for agent in ("random", "oracle"):
        assert main(["evaluate", "--agent", agent, "--pieces", str(dataset), "--nominal-tempo", "performance",
                     "--out", str(real / f"{agent}.json"), "--quiet"]) == 0
    board = tmp_path / "LB.md"
    page = tmp_path / "lb.html"
    assert main(["leaderboard", str(real), "--real", str(real), "--out", str(board), "--html", str(page),
                 "--quiet"]) == 0
    assert "<h2>Real performances</h2>" in page.read_text() and "<td>oracle</td>" in page.read_text()
    text = board.read_text()
    section = text[text.index("## Real performances"):]
    rows = [line for line in section.splitlines() if line.startswith("| data |")]
    assert [r.split("|")[3].strip() for r in rows[:2]] == ["oracle", "random"]  # best first
    assert rows[0].split("|")[7].strip() == "1.000" and "2/2" in rows[0]  # the oracle's worst performance
    assert "| dataset | synth | agent | Tune |" in section  # by piece: Tune_p01, Tune_p02 -> Tune
