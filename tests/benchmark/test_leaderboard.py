import json
import subprocess
import sys

import pytest

from lmm_envs.benchmark.evaluate import evaluate, result_digest, write_result
from lmm_envs.benchmark.leaderboard import (
    ResultFileError,
    html_page,
    load_result,
    load_results,
    markdown,
    tables,
)

ENV = "lmm/ScoreFollowing-v0"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    for agent in ("random", "oracle", "oltw"):
        write_result(evaluate(ENV, agent, limit=2, progress=False), folder / f"{agent}.json")
    return folder


def test_tables_are_sorted_by_normalised_score(results_dir):
    text = markdown(load_results(results_dir))
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| rank")]
    assert [r.split("|")[2].strip() for r in rows] == ["oracle", "oltw", "random"]
    assert "1.000 [1.000, 1.000]" in rows[0]
    page = html_page(load_results(results_dir))
    assert page.count("<svg") >= 1 and "oltw" in page



def test_tracks_are_listed_by_paired_budget_then_steps():
    results = [{"env_id": ENV, "track": track, "normalised_score": {"mean": 0.5}}
               for track in ("all/100k", "64/100k", "8/1M", "baseline", "8/100k", "custom")]
    assert [track for _, track, _ in tables(results)] == ["baseline", "8/100k", "8/1M", "64/100k", "all/100k",
                                                         "custom"]


def test_a_tighter_tracks_agent_also_stands_on_the_looser_tracks():
    def result(name, track, score):
        return {"env_id": ENV, "track": track, "normalised_score": {"mean": score}, "agent": {"name": name}}

    results = [result("short", "8/100k", 0.6), result("long", "all/1M", 0.5), result("wide", "64/100k", 0.7),
               result("oltw", "baseline", 0.8), result("mine", "custom", 0.9)]
    by_track = {track: [r["agent"]["name"] for r in rows] for _, track, rows in tables(results)}
    assert by_track["8/100k"] == ["oltw", "short"]  # nothing looser, nothing custom
    assert by_track["64/100k"] == ["oltw", "wide", "short"]
    assert by_track["all/1M"] == ["oltw", "wide", "short", "long"]
    assert by_track["custom"] == ["mine"]
    text = markdown([{**r, "main_metric": "within_100ms", "protocol": {"metrics": ["within_100ms"]},
                      "aggregate": {"within_100ms": {"mean": 0.5}}, "episodes": []} for r in results])
    assert "| short (track 8/100k) |" in text and "| oltw (baseline) |" in text

def _edited(src, tmp_path, change, redigest=False):
    result = json.loads(src.read_text())
    change(result)
    if redigest:
        result["digest"] = result_digest(result)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(result))
    return path


@pytest.mark.parametrize("change,redigest,message", [
    (lambda r: r["normalised_score"].update(mean=0.99), False, "does not match its digest"),
    (lambda r: r["episodes"][0]["metrics"].update(within_100ms=1.0), False, "does not match its digest"),
    (lambda r: r.update(data_hash="0" * 64), True, "data hash"),
    (lambda r: r.update(env_id="lmm/ScoreFollowing-v9", env_version="v9"), True, "not registered"),
    (lambda r: r["protocol"].update(version=0), True, "protocol version"),
    (lambda r: r["protocol"].update(version=1), True, "protocol version 1 of lmm/ScoreFollowing-v0, this version uses 2"),
    (lambda r: r.pop("aggregate"), True, "missing aggregate"),
])
def test_tampered_or_mismatched_files_are_refused(results_dir, tmp_path, change, redigest, message):
    path = _edited(results_dir / "oltw.json", tmp_path, change, redigest)
    with pytest.raises(ResultFileError, match=message):
        load_result(path)


def test_malformed_json_is_refused(tmp_path):
    (tmp_path / "bad.json").write_text('{"env_id": ')
    with pytest.raises(ResultFileError, match="not valid JSON"):
        load_result(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ResultFileError, match="not a result file"):
        load_result(tmp_path / "list.json")


def test_cli_refuses_a_folder_with_a_tampered_file_and_writes_nothing(results_dir, tmp_path):
    folder = tmp_path / "res"
    folder.mkdir()
    for f in results_dir.glob("*.json"):
        (folder / f.name).write_text(f.read_text())
    _edited(results_dir / "oltw.json", folder, lambda r: r["normalised_score"].update(mean=0.99))
    out = tmp_path / "LEADERBOARD.md"
    run = subprocess.run([sys.executable, "-m", "lmm_envs.cli", "leaderboard", str(folder), "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "edited.json" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not out.exists()
    ok = subprocess.run([sys.executable, "-m", "lmm_envs.cli", "leaderboard", str(results_dir), "--out", str(out),
                         "--html", str(tmp_path / "lb.html")], capture_output=True, text=True)
    assert ok.returncode == 0 and "| 1 | oracle |" in out.read_text() and (tmp_path / "lb.html").exists()


def test_the_kept_baseline_results_load_and_match_the_kept_leaderboard():
    from pathlib import Path

    root = Path(__file__).parents[2]
    results = load_results(root / "leaderboard" / "results")
    assert {r["env_id"] for r in results} == {"lmm/ScoreFollowing-v0", "lmm/Accompaniment-v0",
                                              "lmm/SightReading-v0", "lmm/PlayByEar-v0"}
    assert all(r["on_leaderboard"] for r in results)
    baselines = {(r["env_id"], r["agent"]["name"]) for r in results if r["track"] == "baseline"}
    assert ("lmm/ScoreFollowing-v0", "keep_tempo") in baselines and len(baselines) == 13
    learned = [r for r in results if r["agent"]["kind"] == "sb3"]
    assert {r["track"] for r in learned} == {"8/100k", "8/1M", "64/100k", "64/1M", "all/100k", "all/1M"}
    assert all(Path(r["agent"]["spec"]).parent == Path("leaderboard/checkpoints") for r in learned)
    from lmm_envs.benchmark.real_table import real_performance_markdown

    real = load_results(root / "leaderboard" / "real")  # agents on real performances: the page's last section
    assert real and all(r["track"] == "custom" for r in real)
    expected = markdown(results).rstrip("\n") + "\n\n" + real_performance_markdown(real)
    assert (root / "LEADERBOARD.md").read_text() == expected


def test_a_kept_learned_result_replays_from_its_kept_checkpoint():
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import verify_result

    folder = Path(__file__).parents[2] / "leaderboard" / "results"
    result = load_result(folder / "ScoreFollowing-v0__dagger_ppo_match_s0__8-100k.json")
    assert verify_result(result, folder, episodes=1) == "yes (1/1)"


@pytest.mark.parametrize("env_id,track", [("lmm/ScoreFollowing-v0", "8/1M"), ("lmm/ScoreFollowing-v0", "64/1M"),
                                          ("lmm/ScoreFollowing-v0", "all/1M"), ("lmm/Accompaniment-v0", "64/100k"),
                                          ("lmm/Accompaniment-v0", "64/1M")])
def test_a_kept_lmm_result_replays_through_the_kept_lms(env_id, track):
    """The kept lmm agents keep their LMs out of the checkpoint (in leaderboard/lms/base): the result replays."""
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import result_filename, verify_result

    folder = Path(__file__).parents[2] / "leaderboard" / "results"
    result = load_result(folder / result_filename(env_id, "dagger_ppo_lmm_s1", track))
    assert result["track"] == track and result["normalised_score"]["mean"] > 0.3
    assert verify_result(result, folder, episodes=1) == "yes (1/1)"


def test_the_kept_8_pair_accompanists_carried_on_to_1m_replay_and_beat_their_100k_selves():
    """Accompaniment `lmm` at 8/1M (the 8/100k runs carried on): each seed above its own 100k model and the
    metronome, and a kept model replays its result through the kept LMs."""
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import result_filename, verify_result

    folder = Path(__file__).parents[2] / "leaderboard" / "results"
    env_id = "lmm/Accompaniment-v0"
    for seed in range(3):
        long = load_result(folder / result_filename(env_id, f"dagger_ppo_lmm_s{seed}", "8/1M"))
        short = load_result(folder / result_filename(env_id, f"dagger_ppo_lmm_s{seed}", "8/100k"))
        assert long["track"] == "8/1M" and short["track"] == "8/100k"
        assert long["normalised_score"]["mean"] > short["normalised_score"]["mean"]
        assert long["normalised_score"]["low"] > load_result(folder / "Accompaniment-v0__metronome__baseline.json")[
            "normalised_score"]["high"]
    result = load_result(folder / result_filename(env_id, "dagger_ppo_lmm_s2", "8/1M"))
    assert verify_result(result, folder, episodes=1) == "yes (1/1)"


@pytest.mark.parametrize("env_id,track", [("lmm/ScoreFollowing-v0", "8/1M"), ("lmm/ScoreFollowing-v0", "64/1M"),
                                          ("lmm/ScoreFollowing-v0", "all/1M"), ("lmm/Accompaniment-v0", "64/100k"),
                                          ("lmm/Accompaniment-v0", "all/100k")])
def test_the_kept_results_compare_raw_and_lmm(env_id, track):
    """The central claim's pairs stand on the leaderboard: the same recipe with `raw` and with `lmm` features
    (ScoreFollowing at 8/1M, 64/1M and all/1M; Accompaniment at 64/100k and all/100k), three seeds each, `lmm`
    above `raw` in every seed."""
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import result_filename

    folder = Path(__file__).parents[2] / "leaderboard" / "results"
    by_features = {f: [load_result(folder / result_filename(env_id, f"dagger_ppo_{f}_s{s}", track))
                       for s in range(3)] for f in ("raw", "lmm")}
    assert all(r["track"] == track for rows in by_features.values() for r in rows)
    scores = {f: [r["normalised_score"]["mean"] for r in rows] for f, rows in by_features.items()}
    assert min(scores["lmm"]) > max(scores["raw"])


@pytest.mark.parametrize("track", ["8/1M", "64/1M", "all/1M"])
def test_a_kept_raw_follower_replays_from_its_slim_checkpoint(track):
    """A `raw` follower kept without the optimiser's moments (agents.keep) replays its result, at every 1M budget."""
    import io
    import zipfile
    from pathlib import Path

    import torch

    from agents.keep import OPTIMIZER_ENTRY
    from lmm_envs.benchmark.leaderboard import result_filename, verify_result

    folder = Path(__file__).parents[2] / "leaderboard" / "results"
    result = load_result(folder / result_filename("lmm/ScoreFollowing-v0", "dagger_ppo_raw_s0", track))
    assert result["track"] == track
    with zipfile.ZipFile(Path(__file__).parents[2] / result["agent"]["spec"]) as kept:
        optimizer = torch.load(io.BytesIO(kept.read(OPTIMIZER_ENTRY)), weights_only=True)
    assert optimizer["state"] == {}  # kept small: the policy only
    assert verify_result(result, folder, episodes=1) == "yes (1/1)"


def test_the_kept_sight_readers_replay_and_play_the_score():
    """The learned SightReading agents (DAgger on the 8 pairs' mono pieces, then PPO on the env's reward) are kept
    small, replay their result, and play the score far above random keys in every seed."""
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import result_filename, verify_result

    folder = Path(__file__).parents[2] / "leaderboard" / "results"
    results = [load_result(folder / result_filename("lmm/SightReading-v0", f"dagger_ppo_raw_s{s}", "8/100k"))
               for s in range(3)]
    random_f1 = load_result(folder / "SightReading-v0__random__baseline.json")["aggregate"]
    assert all(r["track"] == "8/100k" and r["protocol"]["version"] == 2 for r in results)
    assert min(r["aggregate"]["note_f1"]["mean"] for r in results) > 10 * random_f1["note_f1"]["mean"]
    assert verify_result(results[0], folder, episodes=1) == "yes (1/1)"


def test_the_kept_sight_readers_taught_by_the_lms_on_unpaired_scores_pass_the_target_and_replay():
    """PPO from scratch rewarded through LM^A, the 8-pair map and LM^V, practising on every train score: on the
    8/100k track, no warm start, every seed's note F1 above 0.25 and above the random player's, and a kept model
    replays its result."""
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import result_filename, verify_result

    root = Path(__file__).parents[2]
    folder = root / "leaderboard" / "results"
    results = [load_result(folder / result_filename("lmm/SightReading-v0", f"ppo_raw-lm-score-unpaired_s{s}", "8/100k"))
               for s in range(3)]
    for result in results:
        run = json.loads((root / result["agent"]["spec"]).with_suffix(".run.json").read_text())
        assert (run["reward"], run["train_pieces"], run["paired_budget"], run["warm_start"]) == ("lm-score", "all", 8,
                                                                                                  None)
        assert result["track"] == "8/100k" and result["aggregate"]["note_f1"]["mean"] > 0.25
    random_f1 = load_result(folder / "SightReading-v0__random__baseline.json")["aggregate"]["note_f1"]["mean"]
    assert min(r["aggregate"]["note_f1"]["mean"] for r in results) > 5 * random_f1
    assert verify_result(results[1], folder, episodes=1) == "yes (1/1)"


def test_the_accompanists_kept_best_on_val_were_chosen_on_val_pieces_and_replay():
    """Accompaniment `lmm` at 64/1M, each seed's checkpoint kept by its score on val pieces (agents.keep
    --best-on-val): the choice is recorded with the val pieces it looked at (chorales of the val split, none of the
    test's), the track is the whole run's, each beats its last model or stays within 0.01 of it, and a kept model
    replays its result through the kept LMs."""
    from pathlib import Path

    from lmm_envs.benchmark.leaderboard import result_filename, verify_result
    from lmm_envs.music.corpus import piece_ids

    root = Path(__file__).parents[2]
    folder = root / "leaderboard" / "results"
    env_id, test = "lmm/Accompaniment-v0", set(piece_ids(split="test"))
    for seed in range(3):
        best = load_result(folder / result_filename(env_id, f"dagger_ppo_lmm-best-on-val_s{seed}", "64/1M"))
        last = load_result(folder / result_filename(env_id, f"dagger_ppo_lmm_s{seed}", "64/1M"))
        kept = json.loads((root / best["agent"]["spec"]).with_suffix(".run.json").read_text())
        chosen = kept["chosen_on_val"]
        assert kept["track"] == best["track"] == "64/1M" and chosen["checkpoints_scored"] > 1
        assert len(chosen["pieces"]) == 16 and not test & set(chosen["pieces"])
        assert all(p.startswith("bach/") for p in chosen["pieces"])  # the val pieces Accompaniment plays
        assert best["normalised_score"]["mean"] > last["normalised_score"]["mean"] - 0.01
    result = load_result(folder / result_filename(env_id, "dagger_ppo_lmm-best-on-val_s0", "64/1M"))
    assert verify_result(result, folder, episodes=1) == "yes (1/1)"
