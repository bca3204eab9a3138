import json
from pathlib import Path

import pytest

from agents.experiment import main, t_interval
from agents.pretrain import pretrain


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lms")
    pretrain(out, size="tiny", lm_steps=10, budgets=(2,), methods=("regression",), pool_limit=3, progress=False, probe=False)
    return out


def test_reward_arms_train_with_their_own_reward_and_are_scored_apart(lm_dir, tmp_path):
    out = tmp_path / "exp"
    assert main(["--env", "lmm/SightReading-v0", "--paired-budget", "2", "--steps", "64", "--seeds", "0",
                 "--features", "raw", "--reward", "env", "lm", "--lm-dir", str(lm_dir), "--limit", "1",
                 "--parallel", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"raw-env", "raw-lm"}
    for arm, reward in (("raw-env", "env"), ("raw-lm", "lm")):
        assert json.loads((out / f"{arm}_s0" / "run.json").read_text())["reward"] == reward
        result = json.loads((out / "results" / f"{arm}_s0.json").read_text())
        assert result["main_metric"] == "note_f1" and result["agent"]["name"] == f"ppo-{arm} seed 0"
        assert summary[arm]["note_f1"] == [result["aggregate"]["note_f1"]["mean"]]


def test_a_features_option_no_extractor_takes_stops_the_experiment_before_any_run(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["--features", "raw", "match", "--features-arg", "frames=4", "--steps", "64", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --features raw takes no option 'frames'") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_hyperparameter_the_config_lacks_stops_the_experiment_before_any_run(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["--env", "lmm/SightReading-v0", "--features", "raw", "--hyperparameter", "gama=0.8", "--steps", "64",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --hyperparameter gama:") and "gamma" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_t_interval_is_centred_on_the_mean_and_needs_two_seeds():
    lo, hi = t_interval([0.1, 0.2, 0.3])
    assert lo < 0.2 < hi and abs((lo + hi) / 2 - 0.2) < 1e-12
    assert all(x != x for x in t_interval([0.5]))  # NaN: no interval from one seed


def test_ray_runs_each_seed_as_a_task_into_the_same_tables(local_ray, tmp_path):
    common = ["--env", "lmm/ScoreFollowing-v0", "--paired-budget", "2", "--steps", "64", "--n-envs", "2",
              "--features", "raw", "--limit", "1"]
    assert main([*common, "--seeds", "0", "1", "--ray", local_ray, "--out", str(tmp_path / "ray")]) == 0
    assert main([*common, "--seeds", "0", "--parallel", "1", "--out", str(tmp_path / "local")]) == 0
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["raw"]["seeds"] == [0, 1] and len(summary["raw"]["normalised_score"]) == 2
    on_ray, local = (json.loads((tmp_path / where / "results" / "raw_s0.json").read_text())
                     for where in ("ray", "local"))
    assert on_ray["episodes"] == local["episodes"]  # the same training and evaluation, wherever it ran


def test_resume_reads_finished_runs_and_carries_on_the_others(tmp_path, monkeypatch, capsys):
    import agents.train

    out = tmp_path / "exp"
    common = ["--env", "lmm/ScoreFollowing-v0", "--paired-budget", "2", "--steps", "64", "--n-envs", "2",
              "--features", "raw", "--limit", "1", "--subset", "first", "--parallel", "1", "--out", str(out)]
    assert main([*common, "--seeds", "0"]) == 0
    said = capsys.readouterr().err  # each run says what it does, named: several run at once, for hours
    assert "raw seed 0: evaluating" in said and "raw seed 0: normalised score" in said
    assert "on 1 protocol pieces (first)" in said
    assert json.loads((out / "results" / "raw_s0.json").read_text())["settings"]["subset"] == "first"
    first = json.loads((out / "summary.json").read_text())
    resumed: list[bool] = []
    original = agents.train.train
    monkeypatch.setattr(agents.train, "train", lambda *a, **k: (resumed.append(k["resume"]), original(*a, **k))[1])
    assert main([*common, "--seeds", "0", "1", "--resume"]) == 0  # seed 0 finished: read; seed 1: run
    assert resumed == [True]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["raw"]["seeds"] == [0, 1]
    assert summary["raw"]["normalised_score"][0] == first["raw"]["normalised_score"][0]


def test_an_experiment_cut_off_keeps_the_results_of_the_runs_that_finished(tmp_path, monkeypatch):
    import agents.train

    out = tmp_path / "exp"
    original = agents.train.train

    def second_seed_fails(*args, **kwargs):
        if args[5] == 1:  # the seed
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(agents.train, "train", second_seed_fails)
    with pytest.raises(KeyboardInterrupt):
        main(["--env", "lmm/ScoreFollowing-v0", "--paired-budget", "2", "--steps", "64", "--n-envs", "2",
              "--features", "raw", "--limit", "1", "--parallel", "1", "--out", str(out), "--seeds", "0", "1"])
    assert [p.name for p in (out / "results").iterdir()] == ["raw_s0.json"]  # seed 0's result, whole
    assert json.loads((out / "results" / "raw_s0.json").read_text())["agent"]["name"] == "ppo-raw seed 0"


def test_leaderboard_keeps_each_model_and_scores_the_kept_file_under_its_leaderboard_name(tmp_path, monkeypatch):
    import lmm_envs.benchmark.evaluate as evaluation
    from lmm_envs.benchmark.leaderboard import load_result, verify_result

    real_evaluate, scored = evaluation.evaluate, []

    def on_one_piece(env_id, agent, **kwargs):  # the full protocol's 306 episodes are too long for a test
        scored.append(agent)
        return real_evaluate(env_id, agent, **{**kwargs, "limit": 1})

    monkeypatch.setattr(evaluation, "evaluate", on_one_piece)
    board, out = tmp_path / "board", tmp_path / "exp"
    assert main(["--env", "lmm/ScoreFollowing-v0", "--paired-budget", "2", "--steps", "64", "--n-envs", "2",
                 "--features", "raw", "--seeds", "0", "--parallel", "1", "--out", str(out),
                 "--leaderboard", str(board)]) == 0
    kept = board / "checkpoints" / "ScoreFollowing-v0__ppo_raw_s0__8-100k.zip"
    assert scored == [str(kept)]  # the kept file is what was scored, not the run's model
    assert kept.is_file() and kept.with_suffix(".run.json").is_file()
    assert kept.stat().st_size < (out / "raw_s0" / "model.zip").stat().st_size  # kept without Adam's moments
    on_board = load_result(board / "results" / "ScoreFollowing-v0__ppo_raw_s0__8-100k.json")
    assert on_board == json.loads((out / "results" / "raw_s0.json").read_text())
    assert on_board["agent"]["spec"] == str(kept)  # (its track reads custom here: one piece, not the protocol)
    assert json.loads(kept.with_suffix(".run.json").read_text())["track"] == "8/100k"
    assert verify_result(on_board, board / "results", episodes=1).startswith("yes")  # it replays from the kept file


def test_resume_scores_a_trained_run_without_training_it_again(tmp_path, monkeypatch, capsys):
    import agents.train

    out = tmp_path / "exp"
    common = ["--env", "lmm/ScoreFollowing-v0", "--paired-budget", "2", "--steps", "64", "--n-envs", "2",
              "--features", "raw", "--seeds", "0", "--limit", "1", "--parallel", "1", "--out", str(out)]
    assert main(common) == 0
    model = (out / "raw_s0" / "model.zip").read_bytes()
    (out / "results" / "raw_s0.json").unlink()  # trained, but its evaluation was cut off
    monkeypatch.setattr(agents.train, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    capsys.readouterr()
    assert main([*common, "--resume"]) == 0
    assert "raw seed 0: trained already" in capsys.readouterr().err
    assert (out / "results" / "raw_s0.json").is_file() and (out / "raw_s0" / "model.zip").read_bytes() == model


def test_leaderboard_with_limit_is_refused_before_any_run(tmp_path, capsys):
    out, board = tmp_path / "exp", tmp_path / "board"
    assert main(["--features", "raw", "--steps", "64", "--limit", "2", "--leaderboard", str(board),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --leaderboard scores on every protocol piece") and len(err.strip().splitlines()) == 1
    assert not out.exists() and not board.exists()


def test_a_finished_run_counts_as_done_only_with_the_same_overridden_hyperparameters_and_pieces(tmp_path):
    from agents.experiment import trained_already

    job = {"features": "raw", "reward": "env", "seed": 0, "steps": 64, "paired_budget": 8}
    (tmp_path / "model.zip").write_bytes(b"")
    (tmp_path / "run.json").write_text(json.dumps({**job, "hyperparameters": {"gamma": 0.5, "n_steps": 64}}))
    assert trained_already(tmp_path, job) and trained_already(tmp_path, {**job, "hyperparameters": {"gamma": 0.5}})
    assert not trained_already(tmp_path, {**job, "hyperparameters": {"gamma": 0.8}})
    assert not trained_already(tmp_path, {**job, "seed": 1})
    assert not trained_already(tmp_path, {**job, "train_pieces": "all"})  # a run from before --train-pieces: paired
    assert trained_already(tmp_path, {**job, "train_pieces": "paired"})


def test_an_arm_is_named_by_its_features_its_reward_and_its_pieces():
    from agents.experiment import arm_name, leaderboard_name

    assert arm_name("raw", "env", ["env"]) == "raw" and arm_name("raw", "lm", ["env", "lm"]) == "raw-lm"
    assert arm_name("raw", "lm-score", ["lm-score"], "all") == "raw-lm-score-unpaired"
    job = {"env": "lmm/SightReading-v0", "warm_start": None, "arm": "raw-lm-score-unpaired", "seed": 0,
           "paired_budget": 8, "steps": 100000}  # the kept LM-reward sight readers' names on the leaderboard
    assert leaderboard_name(job, ".json") == "SightReading-v0__ppo_raw-lm-score-unpaired_s0__8-100k.json"
    assert (Path(__file__).parents[2] / "leaderboard" / "results" / leaderboard_name(job, ".json")).is_file()


def test_best_on_val_scores_the_checkpoints_on_val_and_evaluates_the_best(tmp_path, monkeypatch, capsys):
    import agents.train
    import agents.validation

    out = tmp_path / "exp"
    common = ["--env", "lmm/ScoreFollowing-v0", "--paired-budget", "2", "--steps", "64", "--n-envs", "2",
              "--features", "raw", "--seeds", "0", "--limit", "1", "--parallel", "1", "--out", str(out),
              "--hyperparameter", "rollout_steps=64", "--hyperparameter", "batch_size=32",
              "--best-on-val", "32", "--val-pieces", "1"]
    assert main(common) == 0
    run = out / "raw_s0"  # the run's folder is the features' own: the same runs, another model of each
    curve = json.loads((run / "checkpoint_curve.json").read_text())
    assert len(curve["pieces"]) == 1 and len(curve["points"]) >= 2  # one checkpoint every 32 RL steps, scored
    chosen = json.loads((run / "best_on_val.run.json").read_text())["chosen_on_val"]
    best = max(score for _, score in curve["points"].values())
    assert chosen["normalised_score"] == best and chosen["checkpoints_scored"] == len(curve["points"])
    result = json.loads((out / "results" / "raw-best-on-val_s0.json").read_text())
    assert result["agent"]["name"] == "ppo-raw-best-on-val seed 0"
    assert result["agent"]["spec"] == str(run / "best_on_val.zip")
    assert "raw-best-on-val" in json.loads((out / "summary.json").read_text())
    (out / "results" / "raw-best-on-val_s0.json").unlink()  # cut off before its evaluation: resumed, nothing redone
    monkeypatch.setattr(agents.train, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    monkeypatch.setattr(agents.validation, "val_score", lambda *a: pytest.fail("a scored checkpoint was scored again"))
    assert main([*common, "--resume"]) == 0
    assert (out / "results" / "raw-best-on-val_s0.json").is_file()


def test_best_on_val_refuses_a_negative_spacing_before_any_run(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["--features", "raw", "--steps", "64", "--best-on-val", "-5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --best-on-val") and len(err.strip().splitlines()) == 1
    assert not out.exists()
