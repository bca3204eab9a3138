"""Train an SB3 agent on an lmm env.

    python -m agents.train --env lmm/ScoreFollowing-v0 --algo ppo --features lmm --paired-budget 8 \\
        --steps 100000 --seed 0 --device auto --out runs/sf_lmm_K8_s0 [--recurrent] [--lm-dir runs/lm]

Hyperparameters come from ``agents/configs/<env>.yaml`` (one section per algorithm). The agent trains on the
first K paired pieces (``--paired-budget``; 0 means the whole train split). Writes TensorBoard logs (``tb/``,
with the episode metrics of the env), checkpoints (``checkpoints/``), the final ``model.zip`` and
``run.json`` (the settings, and the leaderboard track they fall in). ``--features lmm`` needs a folder from
``python -m agents.pretrain``; so does ``--reward lm`` (the motion tasks learning from LM^A's likelihood of
what they play, :class:`agents.lm.reward.LMRewardWrapper`) and ``--reward lm-score`` (their own sound, through
LM^A and the K-pair ``--mapping``, against LM^V's reading of the score, :class:`agents.lm.reward.MappedScoreRewardWrapper`;
``lm-margin`` and ``lm-contrast`` against that reading and the same score moved and transposed).
``--resume`` carries on a run that was cut off from its
latest checkpoint (the warm start, once done, is kept as the checkpoint of step 0 and not repeated; while it runs,
each finished DAgger round is kept in ``warm_start_rounds/``, and a resumed run carries on after the last of them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import yaml

import lmm_envs  # noqa: F401
from agents.lm import MAPPED_REWARDS, MAPPING_METHODS, REWARDS
from lmm_envs.errors import ConfigError, LMMError, MissingDependencyError
from lmm_envs.music.expressive import EXPRESSIVE_STYLES, check_style

CONFIGS = Path(__file__).parent / "configs"
ALGOS = ("ppo", "a2c", "dqn", "sac")


def load_config(env_id: str, algo: str, n_envs: int = 1, warm_start: bool = False,
                hyperparameters: dict | None = None) -> dict:
    """The hyperparameters of ``algo`` on ``env_id`` for a run on ``n_envs`` envs: the YAML section, with its
    ``warm_start_overrides`` applied after a warm start, then ``hyperparameters`` (``--hyperparameter``: keys the
    section has, or other keyword arguments of the SB3 class such as ``clip_range``), and ``rollout_steps`` (over all envs) as SB3's per-env ``n_steps``."""
    path = CONFIGS / f"{env_id.split('/')[-1]}.yaml"
    if not path.is_file():
        raise ConfigError(f"no hyperparameters for {env_id} ({path} is missing)")
    sections = yaml.safe_load(path.read_text()) or {}
    if algo not in sections:
        raise ConfigError(f"{path} has no section for {algo}; it has {', '.join(sections)}")
    config = dict(sections[algo])
    overrides = config.pop("warm_start_overrides", None) or {}
    if warm_start:
        config.update(overrides)
    unknown = sorted(set(hyperparameters or {}) - set(config) - {"env_kwargs"} - _algorithm_keywords(algo))
    if unknown:
        raise ConfigError(f"--hyperparameter {', '.join(unknown)}: no hyperparameter of {path.name} or {algo.upper()} "
                          f"that a run may set (n_steps comes from rollout_steps); {path.name} sets "
                          f"{', '.join(k for k in config if k != 'env_kwargs')}")
    config.update(hyperparameters or {})
    if "rollout_steps" in config:
        config["n_steps"] = max(int(config.pop("rollout_steps")) // n_envs, 1)
    return config


_SET_BY_TRAIN = {"self", "policy", "env", "seed", "device", "policy_kwargs", "tensorboard_log", "verbose",
                 "_init_setup_model", "n_steps"}  # n_steps comes from the config's rollout_steps


def _algorithm_keywords(algo: str) -> set[str]:
    """The keyword arguments of ``algo``'s SB3 class that ``--hyperparameter`` may set (``clip_range``,
    ``target_kl``, ...): those :func:`train` does not set itself."""
    import inspect

    import stable_baselines3 as sb3

    algorithm = getattr(sb3, algo.upper(), None)
    if algorithm is None:
        return set()
    return set(inspect.signature(algorithm.__init__).parameters) - _SET_BY_TRAIN


def track_of(paired_budget: int, steps: int) -> str:
    """The leaderboard track a run falls in (the smallest that contains it), or 'custom'."""
    budget = "8" if 0 < paired_budget <= 8 else "64" if 0 < paired_budget <= 64 else "all"
    if steps <= 100_000:
        return f"{budget}/100k"
    return f"{budget}/1M" if steps <= 1_000_000 else "custom"


def _algorithm(algo: str, recurrent: bool):
    import stable_baselines3 as sb3

    if recurrent:
        if algo != "ppo":
            raise ConfigError("--recurrent is RecurrentPPO: use it with --algo ppo")
        try:
            from sb3_contrib import RecurrentPPO
        except ImportError:
            raise MissingDependencyError("--recurrent needs sb3-contrib: pip install sb3-contrib") from None
        return RecurrentPPO, "MultiInputLstmPolicy"
    return getattr(sb3, algo.upper()), "MultiInputPolicy"


def make_callbacks(out: Path, steps: int, checkpoint_every: int, progress: bool, n_envs: int = 1,
                   log: Callable[[str], None] | None = None, done: int = 0):
    """A progress bar (``progress``) or one ``log`` line per ``checkpoint_every`` steps, the env's episode metrics
    into TensorBoard, and the checkpoints; ``steps`` RL steps to go after ``done``."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback

    class Progress(BaseCallback):
        """A progress bar or log lines, and the env's episode metrics into the logger (TensorBoard)."""

        def _on_training_start(self) -> None:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc="training", disable=not progress)
            self.seen, self.began = 0, time.monotonic()

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            before, self.seen = self.seen, self.seen + self.training_env.num_envs
            if log is not None and self.seen // checkpoint_every > before // checkpoint_every:
                rate = self.seen / max(time.monotonic() - self.began, 1e-9)
                log(f"PPO: {done + self.seen} of {done + steps} RL steps ({rate:.0f} steps/s)")
            for info in self.locals.get("infos", []):
                for key, value in (info.get("episode_metrics") or {}).items():
                    self.logger.record_mean(f"episode/{key}", float(value))
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    # CheckpointCallback counts vectorised steps (n_envs env steps each): every checkpoint_every env steps
    return CallbackList([Progress(), CheckpointCallback(max(checkpoint_every // max(n_envs, 1), 1),
                                                        str(out / "checkpoints"), name_prefix="model")])


def checkpoint_steps(name: str) -> int | None:
    """The RL steps in a checkpoint's file name, ``model_<steps>_steps.zip`` (None for any other name)."""
    if not (name.startswith("model_") and name.endswith("_steps.zip")):
        return None
    count = name[len("model_"):-len("_steps.zip")]
    return int(count) if count.isdigit() else None


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    """The run's checkpoints as (RL steps done, path), oldest first."""
    found = []
    for path in (out / "checkpoints").glob("model_*_steps.zip"):
        count = checkpoint_steps(path.name)
        if count is not None:
            found.append((count, path))
    return sorted(found)


def _keep_warm_start(model, imitation, out: Path) -> None:
    """Keep the cloned policy as the checkpoint of RL step 0 and the warm start's record beside it, so that a
    resumed run does not clone again."""
    from dataclasses import asdict

    from lmm_envs.files import atomic_path

    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "checkpoints" / "model_0_steps.zip") as tmp:
        model.save(tmp)
    record = asdict(imitation)
    with atomic_path(out / "warm_start.json") as tmp:
        tmp.write_text(json.dumps(record, default=str))


def _resume(model, out: Path, device: str):
    """Load the latest checkpoint into ``model``; returns (RL steps done, the warm start's record) or (None, None)
    when there is none."""
    from agents.imitation import WarmStart

    found = checkpoints(out)
    if not found:
        print(f"nothing to resume in {out / 'checkpoints'}: starting afresh", file=sys.stderr)
        return None, None
    done, path = found[-1]
    model.set_parameters(str(path), exact_match=True, device=device)
    model.num_timesteps = done
    warm = out / "warm_start.json"
    record = WarmStart(**json.loads(warm.read_text())) if warm.exists() else None
    print(f"resuming from {path} ({done} RL steps done)", file=sys.stderr)
    return done, record


WARM_START_ROUNDS = "warm_start_rounds"  # a warm start's finished rounds, while it runs (agents.imitation.KeptRounds)
DEFAULT_H_MODEL = "runs/h/h_abs_K8_s0.pt"  # what --reward score hears with unless --h-model says (python -m agents.hear)


TRAIN_PIECES = ("paired", "all")  # what the algorithm trains on: the K paired pieces, or the whole train split


def check_train_pieces(train_pieces: str, reward: str, paired_budget: int) -> None:
    """Refuse, in one line, unpaired training pieces for a reward that would need their pairs."""
    if train_pieces not in TRAIN_PIECES:
        raise ConfigError(f"--train-pieces must be one of {', '.join(TRAIN_PIECES)}, got {train_pieces!r}")
    if train_pieces == "all" and reward == "env" and paired_budget:
        label_free = ", ".join(r for r in REWARDS if r != "env")
        raise ConfigError("--train-pieces all trains on unpaired pieces, and the env's reward compares the agent with "
                          f"each piece's performance (a pair): use a label-free --reward ({label_free}), or "
                          "--paired-budget 0 to train on every pair")


def add_train_pieces_option(ap: argparse.ArgumentParser) -> None:
    """``--train-pieces``, for ``agents.train`` and ``agents.experiment`` alike."""
    ap.add_argument("--train-pieces", choices=TRAIN_PIECES, default="paired",
                    help="paired: train on the K paired pieces (default); all: on every train-split piece, which only "
                         "a label-free --reward can use (the pairs then fit its map only, and the warm start)")


def _training_env(env_id: str, algo: str, n_envs: int, seed: int, env_kwargs: dict, reward: str, lm_dir: str,
                  h_model: str | None = None, mapping: str = "regression", paired_budget: int = 8):
    """The vectorised env a run trains on: the native batched env for n_envs > 1 (see :mod:`agents.vec_env`);
    single envs in a ``DummyVecEnv`` for one env, for the LM reward (a per-episode wrapper) and off-policy algos."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    from agents.vec_env import make_training_env

    if reward not in REWARDS:
        raise ConfigError(f"--reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if reward == "env" and algo in ("ppo", "a2c"):
        return make_training_env(env_id, n_envs, seed, **env_kwargs)
    count = n_envs if algo in ("ppo", "a2c") else 1
    if reward != "env":  # the closed loop: the agent's own audio judged by LM^A, h or the LMs through the mapping
        from agents.lm.reward import MappedScoreRewardVecEnv, closed_loop_env, closed_loop_judge

        judge = closed_loop_judge(reward, lm_dir, h_model or DEFAULT_H_MODEL, mapping, paired_budget)  # once for all
        if reward in MAPPED_REWARDS:  # every env's step judged in one batch of the LMs
            venv = make_training_env(env_id, count, seed, monitor=False, **env_kwargs)
            try:
                return VecMonitor(MappedScoreRewardVecEnv(venv, judge))
            except ValueError as e:
                raise ConfigError(str(e)) from None
        venv = DummyVecEnv([lambda: closed_loop_env(gym.make(env_id, **env_kwargs), reward, judge)] * count)
        venv.seed(seed)
        return VecMonitor(venv)
    venv = DummyVecEnv([lambda: gym.make(env_id, **env_kwargs)] * count)
    venv.seed(seed)
    return VecMonitor(venv)


def _extractor_keywords(features: str) -> dict:
    """The keywords the features extractor of ``features`` takes, each with its default (``inspect.Parameter.empty``
    where it has none); the observation space, which SB3 passes itself, left out."""
    import inspect

    from agents.features import EXTRACTORS

    parameters = inspect.signature(EXTRACTORS[features].__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in ("self", "observation_space")}


def checked_features_args(features: str, features_args: dict) -> dict:
    """``--features-arg`` options, refused in one line unless the features extractor takes them."""
    taken = _extractor_keywords(features)
    unknown = sorted(set(features_args) - set(taken))
    if unknown:
        raise ConfigError(f"--features {features} takes no option {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(sorted(taken))}")
    return dict(features_args)


def _with_defaults(features: str, kwargs: dict) -> dict:
    """``kwargs`` with every other keyword of the features extractor at its default, so that a saved model (and its
    ``run.json``) says how it was built even if a default changes later."""
    import inspect

    defaults = {k: v for k, v in _extractor_keywords(features).items() if v is not inspect.Parameter.empty}
    return {**defaults, **kwargs}


def train(env_id: str, algo: str = "ppo", features: str = "raw", paired_budget: int = 8, steps: int = 100_000,
          seed: int = 0, device: str = "auto", out: str | Path = "runs/agent", recurrent: bool = False,
          lm_dir: str = "runs/lm", mapping: str = "regression", checkpoint_every: int = 25_000,
          progress: bool = True, reward: str = "env", n_envs: int = 16, warm_start: str | None = None,
          warm_start_steps: int | None = None, teacher: str = "oracle", eval_every: int = 0,
          eval_pieces: int = 8, train_style: str | None = None, warm_start_style: str | None = None,
          resume: bool = False, h_model: str | None = None, features_args: dict | None = None,
          log: Callable[[str], None] | None = None, hyperparameters: dict | None = None,
          train_pieces: str = "paired"):
    """Train and save an agent (see the module docstring); returns the SB3 model.

    ``n_envs`` episodes step together (the native batched env); ``warm_start`` (``"bc"`` or ``"dagger"``) first
    clones the oracle for ``warm_start_steps`` env steps (default half of ``steps``), which count towards
    ``steps``, then the algorithm continues from the cloned policy for the rest. ``train_style`` renders the
    training performances in another expressive style than the envs' default (``"gentle"``: the earlier, about
    half as expressive model, on which the kept ScoreFollowing checkpoints were trained); ``warm_start_style`` does
    the same for the warm start's demonstrations only (a curriculum: clone on gentle renderings, then RL on the
    training style); evaluation keeps the protocol's.

    ``resume`` continues from the latest ``checkpoints/model_<N>_steps.zip`` in ``out`` (policy and optimiser;
    ``N`` RL steps done), skipping a warm start that finished there (its record is kept in
    ``warm_start.json``), up to the same ``steps`` in all. A warm start cut off before its end carries on after its
    last finished round (``warm_start_rounds/``), and clones the same policy an uninterrupted one would. With
    nothing to resume from it starts afresh. A resumed run's PPO part is not bit-identical to one that was never
    cut off (the envs restart), and a validation curve covers only the part after the resume.

    ``train_pieces="all"`` trains the algorithm on every piece of the train split instead of the K paired ones. Only a
    label-free reward (any but the env's, which compares the agent with the performance) can use the unpaired
    pieces: the agent sees their scores and its own sound, and the K pairs fit only the reward's map (and the
    features'), so the run stays on the K track. A warm start still clones the oracle on the K paired pieces.

    ``log`` (for runs without a progress bar) gets a line after each warm-start round and every
    ``checkpoint_every`` RL steps."""
    from agents.features import EXTRACTORS

    if algo not in ALGOS:
        raise ConfigError(f"--algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    if features not in EXTRACTORS:
        raise ConfigError(f"--features must be one of {', '.join(EXTRACTORS)}, got {features!r}")
    out = Path(out)
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"--n-envs must be a positive integer, got {n_envs!r}")
    if warm_start is not None and (algo not in ("ppo", "a2c") or recurrent):
        raise ConfigError("--warm-start clones into an actor-critic policy: use it with --algo ppo or a2c")
    check_train_pieces(train_pieces, reward, paired_budget)
    config = load_config(env_id, algo, n_envs, warm_start is not None, hyperparameters)
    env_kwargs = dict(config.pop("env_kwargs", {}) or {})
    env_kwargs.update({"paired_budget": paired_budget} if paired_budget else {"split": "train"})
    if train_style is not None:
        check_style(train_style)
        env_kwargs["expressive_style"] = train_style
    warm_kwargs = dict(env_kwargs)
    if train_pieces == "all":  # the scores of the whole split, the pairs kept for the map and the warm start
        env_kwargs = {**{k: v for k, v in env_kwargs.items() if k != "paired_budget"}, "split": "train"}
    if warm_start_style is not None:
        if warm_start is None:
            raise ConfigError("--warm-start-style sets the style of a warm start's demonstrations; add --warm-start")
        check_style(warm_start_style)
        warm_kwargs["expressive_style"] = warm_start_style
    warm_steps = 0
    if warm_start is not None:
        warm_steps = min(warm_start_steps or steps // 2, steps)
    env = _training_env(env_id, algo, n_envs, seed, env_kwargs, reward, lm_dir, h_model, mapping, paired_budget)
    if algo == "dqn" and not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(f"DQN needs a Discrete action space; {env_id} has {env.action_space}")
    if algo == "sac" and not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(f"SAC needs a continuous (Box) action space; {env_id} has {env.action_space}")
    extractor_kwargs = {"lmm": {"lm_dir": lm_dir, "method": mapping, "paired_budget": paired_budget},
                        "hear": {"h_model": h_model or DEFAULT_H_MODEL}}.get(features, {})
    extractor_kwargs = _with_defaults(features, {**extractor_kwargs, **checked_features_args(features, features_args or {})})
    policy_kwargs = {"features_extractor_class": EXTRACTORS[features], "features_extractor_kwargs": extractor_kwargs}
    try:
        import tensorboard  # noqa: F401

        tensorboard_log = str(out / "tb")
    except ImportError:
        tensorboard_log = None
    algorithm, policy = _algorithm(algo, recurrent)
    model = algorithm(policy, env, seed=seed, device=device, policy_kwargs=policy_kwargs,
                      tensorboard_log=tensorboard_log, verbose=0, **config)
    validator = None
    if eval_every:  # the normalised score on val pieces along the way; the best model is kept
        from agents.validation import Validator

        validator = Validator(model, env_id, out, eval_pieces)
    imitation, resumed_from = None, None
    if resume:
        resumed_from, imitation = _resume(model, out, device)
        if resumed_from is not None and warm_start is not None and imitation is None:
            raise ConfigError(f"{out} has checkpoints but no warm_start.json: it was not made by a warm-started "
                              "run of this version, so it cannot be resumed with --warm-start")
    if warm_start is not None and imitation is None:  # the demonstrations' env steps come out of the run's budget
        from agents.imitation import single_env_factory
        from agents.imitation import warm_start as clone

        rounds = out / WARM_START_ROUNDS  # each finished round kept, so that --resume carries on inside the warm start
        if not resume:
            shutil.rmtree(rounds, ignore_errors=True)
        imitation = clone(model.policy, warm_start, single_env_factory(env_id, **warm_kwargs), warm_steps,
                          seed=seed, gamma=float(config.get("gamma", 0.99)), progress=progress, teacher=teacher,
                          on_round=validator, keep=rounds, log=log)
        _keep_warm_start(model, imitation, out)
        shutil.rmtree(rounds, ignore_errors=True)  # the warm start is now the checkpoint of step 0
    rl_steps = steps - (imitation.env_steps if imitation else 0)
    done = resumed_from or 0
    if rl_steps - done > 0:
        callbacks = make_callbacks(out, rl_steps - done, checkpoint_every, progress, env.num_envs, log, done)
        if validator is not None:
            from agents.validation import ValidationCallback

            callbacks.callbacks.append(ValidationCallback(validator, eval_every,
                                                          imitation.env_steps if imitation else 0))
        model.learn(rl_steps - done, callback=callbacks, reset_num_timesteps=resumed_from is None)
    from lmm_envs.files import atomic_path

    with atomic_path(out / "model.zip") as tmp:
        model.save(tmp)
    run = {"env_id": env_id, "algo": algo, "recurrent": recurrent, "features": features, "paired_budget": paired_budget,
           "steps": steps, "seed": seed, "device": str(model.device), "env_kwargs": env_kwargs, "hyperparameters": config,
           "n_envs": n_envs, "rl_steps": max(rl_steps, 0), "resumed_from": resumed_from,
           "validation": None if validator is None else validator.record(),
           "warm_start": None if imitation is None else {"method": imitation.method, "teacher": imitation.teacher,
                                                         "env_steps": imitation.env_steps, "rounds": imitation.rounds,
                                                         "env_kwargs": warm_kwargs},
           "lm_dir": lm_dir if features == "lmm" or reward in ("lm", *MAPPED_REWARDS) else None,
           "mapping": mapping if features == "lmm" or reward in MAPPED_REWARDS else None,
           "features_kwargs": extractor_kwargs, "reward": reward,
           "h_model": (h_model or DEFAULT_H_MODEL) if reward == "score" or features == "hear" else None,
           "train_pieces": train_pieces, "track": track_of(paired_budget, steps)}
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="lmm/ScoreFollowing-v0")
    ap.add_argument("--algo", default="ppo", choices=ALGOS)
    ap.add_argument("--recurrent", action="store_true", help="RecurrentPPO (needs sb3-contrib)")
    ap.add_argument("--features", default="raw", choices=["raw", "lmm", "match", "hear"],
                    help="raw: a CNN per window; lmm: through the frozen LMs and the K-pair mapping; match: the last "
                         "audio frames compared with every score column; hear: the same comparison with the audio "
                         "heard through h: A -> M (--h-model)")
    ap.add_argument("--features-arg", action="append", metavar="KEY=VALUE",
                    help="an option of the features extractor, repeatable (e.g. --features-arg frames=16; "
                         "--features hear --features-arg onsets=true)")
    ap.add_argument("--paired-budget", type=int, default=8, help="train on the first K paired pieces (0: all train)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    ap.add_argument("--out", default="runs/agent")
    ap.add_argument("--lm-dir", default="runs/lm", help="pretrained LMs and mappings (python -m agents.pretrain)")
    ap.add_argument("--mapping", default="regression", choices=MAPPING_METHODS)
    ap.add_argument("--checkpoint-every", type=int, default=25_000)
    ap.add_argument("--reward", default="env", choices=list(REWARDS),
                    help="lm: LM^A's log-likelihood of the agent's own audio (SightReading, PlayByEar); score: how "
                         "well h hears the agent's own audio agree with the score it reads (SightReading); lm-score: "
                         "how well the agent's own audio, through LM^A and the K-pair --mapping, agrees with LM^V's "
                         "reading of the score (SightReading); lm-margin: how much better it agrees with that reading "
                         "than with the same score read earlier, later and transposed (their mean cosine taken off); "
                         "lm-contrast: the InfoNCE log-probability of the score's reading among those")
    ap.add_argument("--h-model", help=f"h: A -> M for --reward score and --features hear (default {DEFAULT_H_MODEL}; "
                                      "python -m agents.hear makes them)")
    ap.add_argument("--n-envs", type=int, default=16, help="episodes stepped together (default 16)")
    ap.add_argument("--warm-start", choices=["bc", "dagger"],
                    help="first clone the oracle (behaviour cloning, or DAgger); its env steps count towards --steps")
    ap.add_argument("--warm-start-steps", type=int, help="env steps of the warm start (default: half of --steps)")
    ap.add_argument("--teacher", default="oracle",
                    help="the registered agent that labels the warm start's states (default oracle; e.g. oltw)")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="every N env steps, score the model on val pieces and keep the best as best_model.zip")
    ap.add_argument("--eval-pieces", type=int, default=8, help="how many val pieces (two renderings each)")
    ap.add_argument("--train-style", choices=sorted(EXPRESSIVE_STYLES),
                    help="expressive style of the training renderings (default: the envs', vienna)")
    ap.add_argument("--warm-start-style", choices=sorted(EXPRESSIVE_STYLES),
                    help="expressive style of the warm start's demonstrations only (default: --train-style's)")
    ap.add_argument("--resume", action="store_true",
                    help="carry on a run that was cut off, from the latest checkpoint in --out (same settings)")
    ap.add_argument("--hyperparameter", action="append", metavar="KEY=VALUE",
                    help="override one of agents/configs/<env>.yaml's hyperparameters for this run, repeatable "
                         "(e.g. --hyperparameter gamma=0.8); run.json records what was used")
    add_train_pieces_option(ap)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    from lmm_envs.cli import key_values

    try:
        features_args = key_values(args.features_arg or [], "--features-arg", "frames=16")
        hyperparameters = key_values(args.hyperparameter or [], "--hyperparameter", "gamma=0.8")
        train(args.env, args.algo, args.features, args.paired_budget, args.steps, args.seed, args.device, args.out,
              args.recurrent, args.lm_dir, args.mapping, args.checkpoint_every, progress=not args.quiet,
              reward=args.reward, n_envs=args.n_envs, warm_start=args.warm_start,
              warm_start_steps=args.warm_start_steps, teacher=args.teacher, eval_every=args.eval_every,
              eval_pieces=args.eval_pieces, train_style=args.train_style, warm_start_style=args.warm_start_style,
              resume=args.resume, h_model=args.h_model, features_args=features_args,
              hyperparameters=hyperparameters, train_pieces=args.train_pieces)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / 'model.zip'}; evaluate it with: lmm-envs evaluate --env {args.env} "
          f"--agent {Path(args.out) / 'model.zip'} --track {track_of(args.paired_budget, args.steps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
