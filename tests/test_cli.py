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
    assert main(["data", "prepare", "--split", "test", "--limit", "2", "--quiet"]) == 0
    assert "prepared 2 performances of 2 pieces" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [(["data", "show", "bach/nope"], "unknown piece id"),
     (["render", "--agent", "nobody", "--out", "x.png"], "unknown agent"),
     (["render", "--env", "lmm/Nothing-v0", "--out", "x.png"], "unknown env id"),
     (["evaluate", "--pieces", "missing.csv"], "piece list not found"),
     (["render", "--agent", "oracle", "--out", "x.bmp", "--piece", "bach/bwv66.6", "--split", "train"], "use .png")],
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
    assert main(["quickstart", "--pieces", "2", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| oltw |" in out and "| oracle | 1.000" in out
    assert (tmp_path / "quickstart_episode.png").exists() and (tmp_path / "quickstart.json").exists()
