"""Red-team round, the command line: every hostile or careless argument is one ``error:`` line and exit 2, checked
before any work starts, and ``--out`` never replaces anything but a regular file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from lmm_envs.cli import main
from lmm_envs.errors import ConfigError
from lmm_envs.files import atomic_path, check_output_file


def cli(capsys, *args: str) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    return code, capsys.readouterr().err


def refused(code: int, err: str, message: str) -> bool:
    lines = [line for line in err.strip().splitlines() if line.startswith(("error:", "lmm-envs"))]
    return code == 2 and "Traceback" not in err and message in err and "error" in lines[-1]


@pytest.fixture
def no_evaluation(monkeypatch):
    """Fail the test if an evaluation starts: refusals must come first."""
    from lmm_envs.benchmark import evaluate

    def started(*args, **kwargs):
        raise AssertionError("the evaluation started before the arguments were checked")

    monkeypatch.setattr(evaluate, "protocol_episodes", started)
    monkeypatch.setattr(evaluate, "_run_all", started)


@pytest.mark.parametrize("env_arg,message", [
    ("expressiveness=abc", "option expressiveness"),
    ("expressiveness=[1]", "option expressiveness"),
    ("expressiveness=NaN", "option expressiveness"),
    ("terminate_on_lost=maybe", "option terminate_on_lost"),
    ("lost_patience=2.5", "option lost_patience"),
    ("render_mode=human", "render_mode"),
    ("synth=fluidsynth", "use --synth"),
    ("synth=xyz", "use --synth"),
    ("split=", "split"),
    ("pieces=a.csv", "use --pieces"),
    ("paired_budget=8", "track"),
    ("performances_per_piece=1", "the protocol's renderings"),
    ("expressiveness=50", "expressiveness must be a number from 0"),  # was a 170 GiB allocation
])
def test_env_args_that_would_crash_or_be_silently_dropped_are_refused(capsys, no_evaluation, env_arg, message):
    code, err = cli(capsys, "evaluate", "--limit", "1", "--quiet", "--env-arg", env_arg)
    assert refused(code, err, message), err


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--limit", "-1"], "--limit"),
    (["evaluate", "--workers", "0"], "--workers"),
    (["evaluate", "--name", "two\nlines"], "one printable line"),
    (["evaluate", "--track", "8/10M"], "unknown track"),
    (["evaluate", "--limit", "2", "--subset", "last"], "--subset"),
    (["data", "prepare", "--split", "test", "--limit", "2", "--subset", "middle"], "--subset"),
    (["render", "--seed", "-1", "--out", "x.png"], "--seed"),
    (["render", "--out", "x.txt"], "use .png"),
    (["data", "prepare", "--split", "test", "--variants", "-5"], "--variants"),
    (["data", "prepare", "--split", "test", "--variants", "0"], "--variants"),
    (["data", "prepare", "--split", "test", "--limit", "-1"], "--limit"),
    (["data", "prepare", "--split", "test", "--expressiveness", "nan"], "--expressiveness"),
    (["data", "prepare", "--split", "test", "--expressiveness", "1e308", "--limit", "1"], "expressiveness"),
    (["quickstart", "--pieces", "0"], "--pieces"),
    (["quickstart", "--steps", "-3"], "--steps"),
    (["leaderboard", "--workers", "-2"], "--workers"),
])
def test_bad_numbers_and_names_are_refused(capsys, no_evaluation, args, message):
    code, err = cli(capsys, *args)
    assert refused(code, err, message), err


@pytest.mark.parametrize("where,message", [
    ("dir", "is a directory"),
    ("below_file", "is not a directory"),
    ("missing_dir", "does not exist"),
    ("fifo", "not a regular file"),
    ("symlink", "symbolic link"),
    ("unwritable", "not writable"),  # /proc: no file can be made there, not even by root
])
@pytest.mark.parametrize("command", ["evaluate", "leaderboard", "render"])
def test_out_paths_that_are_not_a_new_or_regular_file_are_refused_first(capsys, tmp_path, no_evaluation, where,
                                                                         message, command):
    suffix = ".png" if command == "render" else ".json"
    target = tmp_path / f"victim{suffix}"
    target.write_text("keep me")
    out = {"dir": tmp_path, "below_file": target / f"x{suffix}", "missing_dir": tmp_path / "no" / f"x{suffix}",
           "fifo": tmp_path / f"fifo{suffix}", "symlink": tmp_path / f"link{suffix}",
           "unwritable": f"/proc/lmm_out{suffix}"}[where]
    if where == "fifo":
        os.mkfifo(out)
    if where == "symlink":
        os.symlink(target, out)
    args = {"evaluate": ["evaluate", "--limit", "1", "--quiet", "--out", str(out)],
            "leaderboard": ["leaderboard", str(tmp_path), "--out", str(out)],
            "render": ["render", "--quiet", "--out", str(out)]}[command]
    code, err = cli(capsys, *args)
    assert refused(code, err, message), err
    assert target.read_text() == "keep me" and not (tmp_path / "no").exists()
    if where == "fifo":
        assert stat.S_ISFIFO(os.lstat(out).st_mode)


def test_devices_and_fifos_are_never_replaced_by_the_atomic_writer(tmp_path):
    for path in ("/dev/null", tmp_path):
        with pytest.raises(ConfigError):
            check_output_file(path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"), atomic_path(fifo) as tmp:
        tmp.write_text("x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and [p.name for p in tmp_path.iterdir()] == ["fifo"]


def test_a_new_file_in_an_existing_folder_and_an_existing_file_are_accepted(tmp_path):
    assert check_output_file(tmp_path / "new.json") == tmp_path / "new.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_output_file(tmp_path / "old.json") == tmp_path / "old.json"


def test_the_summary_line_is_strict_json_when_a_score_is_undefined():
    from lmm_envs.cli import _summary_line

    line = _summary_line({"normalised_score": float("nan"), "within_100ms": 0.5})
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == {
        "normalised_score": None, "within_100ms": 0.5}
