import json

import numpy as np
import pytest

from agents.train import load_config, main, track_of, train
from lmm_envs.errors import ConfigError


def test_ppo_run_writes_model_logs_checkpoints_and_settings(tmp_path):
    from stable_baselines3 import PPO

    out = tmp_path / "run"
    train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=128, out=out, checkpoint_every=64,
          device="cpu", progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["track"] == "8/100k" and run["env_kwargs"] == {"paired_budget": 2} and run["device"] == "cpu"
    assert list((out / "checkpoints").glob("model_*_steps.zip"))
    assert list((out / "tb").glob("PPO_*/events.out.tfevents.*"))
    PPO.load(out / "model.zip", device="cpu")


@pytest.mark.parametrize("env_id,algo", [("lmm/Accompaniment-v0", "dqn"), ("lmm/ScoreFollowing-v0", "sac"),
                                         ("lmm/SightReading-v0", "a2c")])
def test_each_algorithm_trains_where_its_action_space_fits(tmp_path, env_id, algo):
    train(env_id, algo, "raw", paired_budget=0, steps=64, out=tmp_path / algo, device="cpu", progress=False)
    assert (tmp_path / algo / "model.zip").exists()


def test_wrong_algorithm_for_the_space_and_bad_options_are_clear(tmp_path, capsys):
    with pytest.raises(ConfigError, match="SAC needs a continuous"):
        train("lmm/Accompaniment-v0", "sac", "raw", paired_budget=8, steps=8, out=tmp_path, progress=False)
    assert main(["--env", "lmm/ScoreFollowing-v0", "--features", "lmm", "--lm-dir", str(tmp_path / "none"),
                 "--steps", "8", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "agents.pretrain" in capsys.readouterr().err
    assert main(["--recurrent", "--algo", "dqn", "--steps", "8", "--out", str(tmp_path / "y"), "--quiet"]) == 2


def test_a_run_that_hears_through_h_records_which_h_and_evaluates(tmp_path):
    import torch

    from agents.lm.transcription import KeyNet, KeyNetConfig
    from lmm_envs.benchmark.evaluate import evaluate

    torch.manual_seed(0)
    KeyNet(KeyNetConfig(hidden=16, refine_steps=2)).save(tmp_path / "h.pt")
    out = tmp_path / "run"
    train("lmm/ScoreFollowing-v0", "ppo", "hear", paired_budget=2, steps=64, out=out, device="cpu", progress=False,
          n_envs=2, h_model=str(tmp_path / "h.pt"))
    assert json.loads((out / "run.json").read_text())["h_model"] == str(tmp_path / "h.pt")
    result = evaluate("lmm/ScoreFollowing-v0", str(out / "model.zip"), agent_name="hear", limit=1, progress=False)
    assert len(result["episodes"]) == 2  # through the checkpoint loader's allowlist, untrusted
    assert main(["--features", "hear", "--h-model", str(tmp_path / "none.pt"), "--steps", "8",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2


def test_features_args_reach_the_extractor_are_recorded_and_unknown_ones_are_refused(tmp_path, capsys):
    import torch
    from stable_baselines3 import PPO

    from agents.lm.transcription import KeyNet, KeyNetConfig

    torch.manual_seed(0)
    KeyNet(KeyNetConfig(hidden=16, refine_steps=2)).save(tmp_path / "h.pt")
    out = tmp_path / "run"
    common = ["--features", "hear", "--h-model", str(tmp_path / "h.pt"), "--paired-budget", "2", "--steps", "32",
              "--n-envs", "2", "--device", "cpu", "--quiet"]
    assert main([*common, "--features-arg", "onsets=true", "--features-arg", "frames=4", "--out", str(out)]) == 0
    kwargs = json.loads((out / "run.json").read_text())["features_kwargs"]
    assert kwargs == {"h_model": str(tmp_path / "h.pt"), "onsets": True, "frames": 4, "features_dim": 128,
                      "cache_states": 0}
    extractor = PPO.load(out / "model.zip", device="cpu").policy.features_extractor
    assert (extractor.onsets, extractor.frames) == (True, 4)
    capsys.readouterr()
    assert main([*common, "--features-arg", "onset=false", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "takes no option 'onset'" in err and "onsets" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert main([*common, "--features-arg", "onsets", "--out", str(tmp_path / "y")]) == 2


def test_configs_and_tracks():
    assert load_config("lmm/ScoreFollowing-v0", "sac")["env_kwargs"] == {"action_type": "continuous"}
    assert track_of(8, 100_000) == "8/100k" and track_of(64, 1_000_000) == "64/1M" and track_of(0, 50_000) == "all/100k"


def test_a_hyperparameter_override_reaches_the_algorithm_is_recorded_and_unknown_ones_are_refused(tmp_path, capsys):
    from stable_baselines3 import PPO

    base = load_config("lmm/SightReading-v0", "ppo", n_envs=2)
    changed = load_config("lmm/SightReading-v0", "ppo", n_envs=2, hyperparameters={"gamma": 0.8, "rollout_steps": 64})
    assert (changed["gamma"], changed["n_steps"]) == (0.8, 32) and base["gamma"] == 0.5
    assert {k: v for k, v in changed.items() if k not in ("gamma", "n_steps")} == {
        k: v for k, v in base.items() if k not in ("gamma", "n_steps")}
    out = tmp_path / "run"
    common = ["--env", "lmm/SightReading-v0", "--paired-budget", "8", "--steps", "64", "--n-envs", "2", "--device",
              "cpu", "--quiet"]
    assert main([*common, "--hyperparameter", "gamma=0.8", "--hyperparameter", "gae_lambda=0.8", "--hyperparameter",
                 "target_kl=0.01", "--out", str(out)]) == 0  # target_kl: PPO's, though the YAML does not set it
    assert json.loads((out / "run.json").read_text())["hyperparameters"]["gamma"] == 0.8
    model = PPO.load(out / "model.zip", device="cpu")
    assert (model.gamma, model.gae_lambda, model.target_kl) == (0.8, 0.8, 0.01)
    with pytest.raises(ConfigError, match="n_steps"):  # the config's rollout_steps sets it, over all envs
        load_config("lmm/SightReading-v0", "ppo", hyperparameters={"n_steps": 8})
    capsys.readouterr()
    assert main([*common, "--hyperparameter", "gama=0.8", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "gama" in err and "gamma" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_lm_reward_needs_a_playing_env_and_pretrained_lms(tmp_path):
    with pytest.raises(ConfigError, match="agents.pretrain"):
        train("lmm/SightReading-v0", "ppo", "raw", paired_budget=8, steps=8, out=tmp_path, progress=False,
              reward="lm", lm_dir=str(tmp_path / "none"))


def test_a_warm_start_counts_towards_the_steps_and_is_recorded(tmp_path):
    from stable_baselines3 import PPO

    out = tmp_path / "warm"
    assert main(["--env", "lmm/ScoreFollowing-v0", "--features", "match", "--paired-budget", "2", "--steps", "512",
                 "--n-envs", "4", "--warm-start", "dagger", "--warm-start-steps", "256", "--device", "cpu",
                 "--out", str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["warm_start"]["method"] == "dagger" and run["warm_start"]["env_steps"] == 256
    assert run["rl_steps"] == 256 and run["n_envs"] == 4 and run["hyperparameters"]["n_steps"] == 1024 // 4
    assert PPO.load(out / "model.zip", device="cpu").num_timesteps >= 256


def test_warm_starts_need_an_actor_critic_algorithm(tmp_path):
    with pytest.raises(ConfigError, match="ppo or a2c"):
        train("lmm/Accompaniment-v0", "dqn", "raw", paired_budget=8, steps=64, out=tmp_path, progress=False,
              warm_start="bc")


def test_validation_keeps_a_curve_and_the_best_model_and_plots(tmp_path):
    from agents.plot_curves import main as plot_main

    out = tmp_path / "val"
    assert main(["--env", "lmm/ScoreFollowing-v0", "--features", "match", "--paired-budget", "2", "--steps", "2048",
                 "--n-envs", "4", "--warm-start", "dagger", "--warm-start-steps", "256", "--eval-every", "1024",
                 "--eval-pieces", "1", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    validation = json.loads((out / "run.json").read_text())["validation"]
    steps = [s for s, _ in validation["curve"]]
    assert steps[0] == 64 and steps[3] == 256 and steps[-1] >= 2048 and steps == sorted(steps)  # 4 rounds, then PPO
    assert validation["best_normalised_score"] == max(v for _, v in validation["curve"])
    assert (out / "best_model.zip").exists() and not (out / "validating.zip").exists()
    assert plot_main([str(out), "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_main([str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2  # no run.json there


def test_a_training_style_reaches_the_training_envs_and_is_recorded(tmp_path, monkeypatch):
    import json

    from lmm_envs import pieces

    styles = set()
    original = pieces.prepare_piece

    def spy(*args, **kwargs):
        styles.add(kwargs.get("style"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pieces, "prepare_piece", spy)
    monkeypatch.setattr("lmm_envs.envs.base.prepare_piece", spy)
    train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=64, out=tmp_path, n_envs=2, device="cpu",
          progress=False, train_style="gentle")
    assert styles == {"gentle"}
    assert json.loads((tmp_path / "run.json").read_text())["env_kwargs"]["expressive_style"] == "gentle"
    with pytest.raises(ConfigError, match="expressive_style must be one of"):
        train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=64, out=tmp_path / "x", progress=False,
              train_style="wild")


def test_a_curriculum_clones_on_one_style_and_trains_on_another(tmp_path, monkeypatch):
    import json

    from agents import imitation

    seen = {}
    original = imitation.single_env_factory

    def spy(env_id, **kwargs):
        seen.update(kwargs)
        return original(env_id, **kwargs)

    monkeypatch.setattr(imitation, "single_env_factory", spy)
    train("lmm/ScoreFollowing-v0", "ppo", "match", paired_budget=2, steps=256, out=tmp_path, n_envs=2, device="cpu",
          progress=False, warm_start="bc", warm_start_steps=128, warm_start_style="gentle")
    run = json.loads((tmp_path / "run.json").read_text())
    assert seen["expressive_style"] == "gentle" and run["warm_start"]["env_kwargs"]["expressive_style"] == "gentle"
    assert "expressive_style" not in run["env_kwargs"]  # RL on the envs' own renderings
    with pytest.raises(ConfigError, match="add --warm-start"):
        train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=64, out=tmp_path / "x", progress=False,
              warm_start_style="gentle")


def test_a_run_cut_off_resumes_from_its_latest_checkpoint(tmp_path):
    import numpy as np
    from stable_baselines3 import PPO

    out = tmp_path / "run"
    settings = dict(paired_budget=2, out=out, checkpoint_every=64, n_envs=2, device="cpu", progress=False)
    train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=256, **settings)
    (out / "model.zip").unlink()  # cut off: only the checkpoints are left, and the first of them
    saved = sorted((out / "checkpoints").glob("model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))
    first = int(saved[0].stem.split("_")[1])
    for late in saved[1:]:
        late.unlink()
    checkpoint = PPO.load(saved[0], device="cpu")
    # resumed with nothing left to do, the model is the checkpoint itself
    train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=first, resume=True, **settings)
    same = PPO.load(out / "model.zip", device="cpu")
    for a, b in zip(checkpoint.policy.parameters(), same.policy.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    assert json.loads((out / "run.json").read_text())["resumed_from"] == first
    # resumed with steps left, it trains on from there to the run's total
    train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=first + 64, resume=True, **settings)
    assert PPO.load(out / "model.zip", device="cpu").num_timesteps > first
    assert len(list((out / "checkpoints").glob("model_*_steps.zip"))) > 1


def test_a_resumed_warm_started_run_does_not_clone_again(tmp_path, monkeypatch):
    import agents.imitation

    out = tmp_path / "warm"
    settings = dict(paired_budget=2, out=out, n_envs=2, device="cpu", progress=False, warm_start="bc",
                    warm_start_steps=64)
    train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=64, **settings)  # the warm start only: no RL steps
    assert (out / "checkpoints" / "model_0_steps.zip").exists()

    def no_second_clone(*args, **kwargs):
        raise AssertionError("the warm start ran again")

    monkeypatch.setattr(agents.imitation, "warm_start", no_second_clone)
    train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=192, resume=True, **settings)
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from"] == 0 and run["warm_start"]["env_steps"] == 64 and run["rl_steps"] == 128
    (out / "warm_start.json").unlink()
    with pytest.raises(ConfigError, match="warm_start.json"):
        train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=192, resume=True, **settings)


def test_a_run_cut_off_inside_its_dagger_carries_on_after_the_last_finished_round(tmp_path, monkeypatch):
    import agents.imitation

    out = tmp_path / "dagger"
    settings = dict(paired_budget=2, out=out, n_envs=2, device="cpu", progress=False, warm_start="dagger",
                    warm_start_steps=128)
    fits = []
    original_fit = agents.imitation.behaviour_cloning

    def cut_in_round_two(*args, **kwargs):
        fits.append(1)
        if len(fits) == 2:
            raise KeyboardInterrupt  # the session ends while round 1 is being fitted
        return original_fit(*args, **kwargs)

    monkeypatch.setattr(agents.imitation, "behaviour_cloning", cut_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=192, **settings)
    assert json.loads((out / "warm_start_rounds" / "record.json").read_text())["record"]["env_steps"] == 32
    monkeypatch.setattr(agents.imitation, "behaviour_cloning", original_fit)
    rounds_collected = []
    original_collect = agents.imitation.collect
    monkeypatch.setattr(agents.imitation, "collect",
                        lambda *a, **k: rounds_collected.append(a[2]) or original_collect(*a, **k))
    train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=192, resume=True, **settings)
    assert len(rounds_collected) == 3  # rounds 1 to 3 of DAgger's 4; round 0 came from the folder
    run = json.loads((out / "run.json").read_text())
    assert run["warm_start"]["env_steps"] == 128 and [r["states"] for r in run["warm_start"]["rounds"]] == [32, 64, 96, 128]
    assert not (out / "warm_start_rounds").exists()  # removed once the warm start is the checkpoint of step 0


def test_a_fresh_run_does_not_carry_on_the_rounds_an_earlier_run_left(tmp_path, monkeypatch):
    import agents.imitation

    out = tmp_path / "dagger"
    settings = dict(paired_budget=2, out=out, n_envs=2, device="cpu", progress=False, warm_start="dagger",
                    warm_start_steps=64)
    monkeypatch.setattr(agents.imitation, "behaviour_cloning", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    (out / "warm_start_rounds").mkdir(parents=True)
    (out / "warm_start_rounds" / "record.json").write_text("{}")  # what a cut-off run left, unreadable on purpose
    with pytest.raises(KeyboardInterrupt):  # started afresh: it collects round 0 and fits it, not reading the folder
        train("lmm/ScoreFollowing-v0", "ppo", "raw", steps=64, **settings)
    assert not (out / "warm_start_rounds" / "record.json").exists()


def test_a_run_without_a_progress_bar_logs_each_round_and_checkpoint(tmp_path):
    lines: list[str] = []
    train("lmm/ScoreFollowing-v0", "ppo", "raw", paired_budget=2, steps=64 + 1024, out=tmp_path / "run", n_envs=2,
          device="cpu", progress=False, warm_start="dagger", warm_start_steps=64, checkpoint_every=512,
          log=lines.append)  # 1024 RL steps: one PPO rollout
    rounds = [line for line in lines if line.startswith("dagger round")]
    assert [line.split(":")[0] for line in rounds] == [f"dagger round {r} of 4" for r in (1, 2, 3, 4)]
    assert "64 of 64 env steps" in rounds[-1] and "agreement with the oracle" in rounds[-1]
    ppo = [line for line in lines if line.startswith("PPO:")]
    assert [line.split(" (")[0] for line in ppo] == ["PPO: 512 of 1024 RL steps", "PPO: 1024 of 1024 RL steps"]


def test_a_curve_after_the_fact_scores_the_kept_checkpoints_once_each(tmp_path, monkeypatch):
    """Runs made without --eval-every (or still training, across sessions) get their learning curve from the
    checkpoints they keep; a point once scored is not scored again."""
    from agents.plot_curves import load_checkpoint_curves
    from agents.plot_curves import main as plot_main
    from lmm_envs.benchmark import evaluate as evaluation

    out = tmp_path / "exp" / "match_s0"
    train("lmm/ScoreFollowing-v0", "ppo", "match", paired_budget=2, steps=64 + 1024, out=out, n_envs=4,
          device="cpu", progress=False, warm_start="bc", warm_start_steps=64, checkpoint_every=256)
    assert plot_main([str(out), "--from-checkpoints", "500", "--pieces", "1", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    kept = json.loads((out / "checkpoint_curve.json").read_text())
    assert sorted(kept["points"]) == ["model_0_steps.zip", "model_1024_steps.zip", "model_512_steps.zip"]
    assert [steps for steps, _ in sorted(kept["points"].values())] == [64, 64 + 512, 64 + 1024]  # warm start's too

    def no_second_scoring(*args, **kwargs):
        raise AssertionError("a kept point was scored again")

    monkeypatch.setattr(evaluation, "evaluate", no_second_scoring)
    (out / "run.json").unlink()  # as if still training: labelled by its experiment and arm
    curves = load_checkpoint_curves([out], 500, "lmm/ScoreFollowing-v0", 1)
    assert list(curves) == ["exp: match"] and curves["exp: match"][0][:, 0].tolist() == [64, 576, 1088]
    assert plot_main([str(out), "--from-checkpoints", "0", "--out", str(tmp_path / "d.png")]) == 2


def test_checkpoint_curves_scored_in_parallel_processes_are_the_ones_scored_in_turn(tmp_path):
    """--workers N scores N runs at a time (one process each): the same points, in the same order of runs."""
    from agents.plot_curves import load_checkpoint_curves
    from agents.plot_curves import main as plot_main

    first = tmp_path / "exp" / "match_s0"
    train("lmm/ScoreFollowing-v0", "ppo", "match", paired_budget=2, steps=512, out=first, n_envs=4, device="cpu",
          progress=False, checkpoint_every=256)
    second = tmp_path / "exp" / "match_s1"
    train("lmm/ScoreFollowing-v0", "ppo", "match", paired_budget=2, steps=512, seed=1, out=second, n_envs=4,
          device="cpu", progress=False, checkpoint_every=256)
    in_parallel = load_checkpoint_curves([first, second], 256, "lmm/ScoreFollowing-v0", 1, workers=2)
    for run in (first, second):
        (run / "checkpoint_curve.json").unlink()
    in_turn = load_checkpoint_curves([first, second], 256, "lmm/ScoreFollowing-v0", 1)
    assert list(in_parallel) == list(in_turn) and len(in_turn[next(iter(in_turn))]) == 2
    for a, b in zip(next(iter(in_parallel.values())), next(iter(in_turn.values())), strict=True):
        np.testing.assert_array_equal(a, b)
    assert plot_main([str(first), "--from-checkpoints", "256", "--workers", "0", "--out", str(tmp_path / "e.png")]) == 2


def test_validation_scores_on_val_pieces_of_both_collections():
    """The val split lists its Bach chorales first: a validation on its first pieces would see chorales only."""
    from agents.validation import val_pieces

    pieces = val_pieces(8)
    assert len(set(pieces)) == 8 and {p.split("/")[0] for p in pieces} == {"bach", "ryans"}
    assert val_pieces(1) == val_pieces(8)[:1]


@pytest.mark.parametrize("env_id", ["lmm/Accompaniment-v0", "lmm/SightReading-v0"])
def test_validation_runs_on_as_many_pieces_as_asked_of_the_env_that_plays_them(env_id):
    """Accompaniment plays the chorales only and SightReading's protocol the mono pieces only: a spread over the
    whole val split would give the Accompaniment validation 2 pieces of 8 (4 episodes)."""
    from agents.validation import val_pieces
    from lmm_envs.benchmark.evaluate import protocol_episodes

    pieces = val_pieces(8, env_id)
    assert len(set(pieces)) == 8
    assert len(protocol_episodes(env_id, pieces)) == 16
    assert val_pieces(8, "lmm/ScoreFollowing-v0") == val_pieces(8)  # ScoreFollowing plays every val piece
