import subprocess
import sys

import pytest

from lmm_envs.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lmm_envs.cli", *args], capture_output=True, text=True)


def test_data_list_and_show(capsys):
    assert main(["data", "list", "--split", "test", "--collection", "bach"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) > 20 and all(line.startswith("bach/") for line in out)
    assert main(["data", "show", "bach/bwv66.6"]) == 0
    assert '"n_parts": 4' in capsys.readouterr().out


def test_data_prepare_shows_what_it_did(capsys):
    assert main(["data", "prepare", "--split", "test", "--limit", "2", "--variants", "2", "--workers", "1",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "prepared 4 renderings of 2 pieces" in out and "x real time" in out and "style vienna" in out
    assert main(["data", "prepare", "--split", "test", "--limit", "2", "--variants", "2", "--quiet"]) == 0
    assert "(0 built, 4 already cached)" in capsys.readouterr().out


def test_data_prepare_with_a_limit_prepares_the_pieces_evaluate_with_that_limit_runs(capsys, tmp_path, fresh_process):
    """Both spread N pieces over the test split the same way, so a quick measurement builds no rendering."""
    from lmm_envs.pieces import renderings_built

    fresh_process(tmp_path / "cache")
    assert main(["data", "prepare", "--split", "test", "--limit", "2", "--variants", "2", "--quiet"]) == 0
    built = renderings_built()
    assert main(["evaluate", "--agent", "keep_tempo", "--limit", "2", "--quiet"]) == 0
    assert renderings_built() == built


@pytest.mark.parametrize(
    "args,message",
    [(["data", "show", "bach/nope"], "unknown piece id"),
     (["render", "--agent", "nobody", "--out", "x.png"], "unknown agent"),
     (["render", "--env", "lmm/Nothing-v0", "--out", "x.png"], "unknown env id"),
     (["evaluate", "--pieces", "missing.csv"], "piece list not found"),
     (["render", "--agent", "oracle", "--out", "x.bmp", "--piece", "bach/bwv66.6", "--split", "train"], "use .png"),
     (["render", "--agent", "oracle", "--out", "x.wav", "--piece", "bach/bwv66.6", "--split", "train"],
      "makes no episode audio"),
     (["evaluate", "--env", "lmm/SightReading-v0", "--env-arg", "polyphony"], "KEY=VALUE"),
     (["evaluate", "--env", "lmm/SightReading-v0", "--env-arg", "polyphony=chords"], "polyphony must be"),
     (["evaluate", "--env", "lmm/Accompaniment-v0", "--env-arg", "tempo=3"], "unknown option(s) tempo")],
)
def test_user_errors_exit_2_with_one_line(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "lmm_envs.cli", *args], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_bad_arguments_exit_2():
    assert run_cli("data", "prepare").returncode == 2


def test_render_png(tmp_path):
    from PIL import Image

    out = tmp_path / "episode.png"
    assert main(["render", "--agent", "oltw", "--piece", "bach/bwv66.6", "--split", "train", "--out", str(out)]) == 0
    image = Image.open(out)
    assert image.mode == "RGB" and image.size[0] > 100


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    assert main(["quickstart", "--pieces", "2", "--steps", "256", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| oltw |" in out and "| 1 | oracle | 1.000" in out and "dagger+ppo (quickstart)" in out
    assert "| keep_tempo |" in out and "The learned agent (DAgger from the oracle, then PPO" in out
    for name in ("quickstart_episode.png", "LEADERBOARD.md", "leaderboard.html", "dagger_ppo_scorefollowing.zip"):
        assert (tmp_path / name).exists()
    assert len(list((tmp_path / "results").glob("*.json"))) == 5


def test_render_accompaniment_episode_to_wav(tmp_path):
    from lmm_envs.audio.wav import read_audio

    out = tmp_path / "duet.wav"
    assert main(["render", "--env", "lmm/Accompaniment-v0", "--agent", "follower_accompanist", "--piece",
                 "bach/bwv66.6", "--split", "train", "--out", str(out)]) == 0
    audio = read_audio(out, 22050)
    assert audio.shape[0] > 22050 * 10 and abs(audio).max() > 0.01
    assert out.stat().st_mode & 0o044  # readable by others like any file the user writes, not private


def test_evaluate_with_env_args(capsys):
    assert main(["evaluate", "--env", "lmm/PlayByEar-v0", "--agent", "transcriber", "--env-arg", "polyphony=poly",
                 "--limit", "2", "--quiet"]) == 0
    assert '"note_f1"' in capsys.readouterr().out
