"""Red-team round, result files and the leaderboard: nothing malformed gets past as a traceback, nothing altered
gets past as a ranking, names cannot break or inject into the tables, and ``--verify`` catches forged episodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lmm_envs.benchmark.evaluate import evaluate, result_digest, summarise, write_result
from lmm_envs.benchmark.leaderboard import ResultFileError, html_page, load_result, markdown, verify_result
from lmm_envs.benchmark.protocol import get_protocol
from lmm_envs.cli import main
from lmm_envs.errors import ConfigError

ENV = "lmm/ScoreFollowing-v0"
KEPT = Path(__file__).parents[2] / "leaderboard" / "results" / "ScoreFollowing-v0__oltw__baseline.json"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    write_result(evaluate(ENV, "oltw", limit=1, progress=False), folder / "oltw.json")
    return folder


def forged(src: Path, dst: Path, change, resummarise: bool = False) -> Path:
    """``src`` changed by ``change``, with its summary recomputed (optional) and a valid digest: what someone who
    read the code can write."""
    result = json.loads(src.read_text())
    change(result)
    if resummarise:
        proto = get_protocol(result["env_id"])
        result.update(summarise(result["episodes"], proto.main_metric, proto.metrics))
    result["digest"] = result_digest(result)
    dst.write_text(json.dumps(result))
    return dst


def test_deeply_nested_json_is_refused(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultFileError, match="nested too deeply"):
        load_result(tmp_path / "deep.json")


def test_a_fifo_named_like_a_result_is_refused_not_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "blocking.json")
    with pytest.raises(ResultFileError, match="not a regular file"):
        load_result(tmp_path / "blocking.json")


@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(episodes="many"), "episodes should be list"),
    (lambda r: r.update(episodes=[]), "episodes is empty"),
    (lambda r: r["episodes"].__setitem__(0, 7), "episodes\\[0\\]"),
    (lambda r: r["episodes"][0].update(metrics={"within_100ms": "high"}), "metrics should hold numbers"),
    (lambda r: r["episodes"][0].pop("reference"), "episodes\\[0\\]"),
    (lambda r: r["episodes"][0].pop("piece_index"), "piece_index"),
    (lambda r: r.update(agent={"name": 3, "kind": "registered"}), "agent should have a name"),
    (lambda r: r.update(agent="oltw"), "agent should be dict"),
    (lambda r: r.update(normalised_score=[1.5]), "normalised_score should be dict"),
    (lambda r: r.update(aggregate=None), "aggregate should be dict"),
    (lambda r: r.update(protocol="v1"), "protocol version"),
    (lambda r: r.update(format="2"), "result format"),
])
def test_files_of_the_wrong_shape_are_refused_not_a_traceback(results_dir, tmp_path, change, message):
    path = forged(results_dir / "oltw.json", tmp_path / "bad.json", change)
    with pytest.raises(ResultFileError, match=message):
        load_result(path)


@pytest.mark.parametrize("change,message", [
    (lambda r: r["normalised_score"].update(mean=1.5), "normalised_score is not what its episodes give"),
    (lambda r: r["aggregate"]["within_100ms"].update(mean=0.99), "aggregate is not what"),
    (lambda r: r["reference"].update(random=0.0), "reference is not what"),
    (lambda r: r["protocol"].update(main_metric="within_1000ms"), "protocol"),
    (lambda r: r.update(main_metric="tracking_ratio"), "protocol"),
    (lambda r: r.update(track="1/1"), "not a track"),
    (lambda r: r.update(on_leaderboard=True), "not a track"),
])
def test_a_summary_that_disagrees_with_the_episodes_is_refused_even_with_a_valid_digest(results_dir, tmp_path,
                                                                                      change, message):
    path = forged(results_dir / "oltw.json", tmp_path / "forged.json", change)
    with pytest.raises(ResultFileError, match=message):
        load_result(path)


def test_an_on_track_result_must_hold_every_protocol_episode(tmp_path):
    def drop_the_worst(result):
        episodes = sorted(result["episodes"], key=lambda e: e["metrics"]["within_100ms"])
        keep = {id(e) for e in episodes[10:]}
        result["episodes"] = [e for e in result["episodes"] if id(e) in keep]

    assert load_result(KEPT)["track"] == "baseline"
    path = forged(KEPT, tmp_path / "cherry.json", drop_the_worst, resummarise=True)
    with pytest.raises(ResultFileError, match="must cover the whole protocol"):
        load_result(path)


def test_forged_episodes_pass_the_checks_but_fail_verification(results_dir, tmp_path):
    assert verify_result(load_result(results_dir / "oltw.json"), results_dir) == "yes (2/2)"

    def better(result):
        for e in result["episodes"]:
            e["metrics"]["within_100ms"] = 1.0

    path = forged(results_dir / "oltw.json", tmp_path / "oltw.json", better, resummarise=True)
    result = load_result(path)  # self-consistent: only re-running the episodes can tell
    assert verify_result(result, tmp_path).startswith("NO: 2 of 2 differ")


def test_the_cli_adds_a_verified_column(results_dir, tmp_path, capsys):
    assert main(["leaderboard", str(results_dir), "--verify", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| verified |" in out and "yes (1/1)" in out


def test_a_python_agent_cannot_be_verified(results_dir, tmp_path):
    result = evaluate(ENV, lambda obs: 1, agent_name="keep tempo", limit=1, progress=False)
    assert verify_result(result, tmp_path) == "no: a Python agent cannot be re-run"


NASTY = "evil | <script>alert(1)</script> & `x`"


def test_names_cannot_break_the_markdown_table_or_inject_html(results_dir, tmp_path):
    named = evaluate(ENV, "random", agent_name=NASTY, limit=1, progress=False)
    line_break = forged(results_dir / "oltw.json", tmp_path / "nl.json",
                        lambda r: r["agent"].update(name="two\nlines | <b>x</b>"))
    results = [load_result(results_dir / "oltw.json"), named, load_result(line_break)]
    text = markdown(results)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| rank")]
    assert len(rows) == 3 and all(len(r.replace("\\|", "").split("|")) == len(rows[0].split("|")) for r in rows)
    assert "<script>" not in text and "<b>" not in text and "&lt;script&gt;" in text
    page = html_page(results)
    assert "<script>" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("kwargs,message", [
    ({"agent_name": "a\nb"}, "one printable line"),
    ({"agent_name": "\x1b[31mred"}, "one printable line"),
    ({"limit": -1}, "limit"),
    ({"workers": 0}, "workers"),
    ({"env_kwargs": {"synth": "fluidsynth"}}, "use --synth"),
    ({"env_kwargs": {"terminate_on_lost": "maybe"}}, "terminate_on_lost"),
])
def test_evaluate_refuses_what_would_make_a_misleading_result(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        evaluate(ENV, "random", progress=False, **kwargs)


def test_results_are_strict_json(results_dir, tmp_path):
    shutil.copy(results_dir / "oltw.json", tmp_path / "r.json")
    json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in a result file"))
