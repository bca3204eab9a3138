"""Train an SB3 agent on an lmm env.

    python -m agents.train --env lmm/ScoreFollowing-v0 --algo ppo --features lmm --paired-budget 8 \\
        --steps 100000 --seed 0 --device auto --out runs/sf_lmm_K8_s0 [--recurrent] [--lm-dir runs/lm]

Hyperparameters come from ``agents/configs/<env>.yaml`` (one section per algorithm). The agent trains on the
first K paired pieces (``--paired-budget``; 0 means the whole train split). Writes TensorBoard logs (``tb/``,
with the episode metrics of the env), checkpoints (``checkpoints/``), the final ``model.zip`` and
``run.json`` (the settings, and the leaderboard track they fall in). ``--features lmm`` needs a folder from
``python -m agents.pretrain``; so does ``--reward lm`` (the motion tasks learning from LM^A's likelihood of
what they play, :class:`agents.lm.reward.LMRewardWrapper`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import yaml

import lmm_envs  # noqa: F401
from lmm_envs.errors import ConfigError, LMMError, MissingDependencyError

CONFIGS = Path(__file__).parent / "configs"
ALGOS = ("ppo", "a2c", "dqn", "sac")


def load_config(env_id: str, algo: str) -> dict:
    path = CONFIGS / f"{env_id.split('/')[-1]}.yaml"
    if not path.is_file():
        raise ConfigError(f"no hyperparameters for {env_id} ({path} is missing)")
    config = yaml.safe_load(path.read_text()) or {}
    if algo not in config:
        raise ConfigError(f"{path} has no section for {algo}; it has {', '.join(config)}")
    return dict(config[algo])


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


def make_callbacks(out: Path, steps: int, checkpoint_every: int, progress: bool):
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback

    class Progress(BaseCallback):
        """A progress bar, and the env's episode metrics into the logger (TensorBoard)."""

        def _on_training_start(self) -> None:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc="training", disable=not progress)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            for info in self.locals.get("infos", []):
                for key, value in (info.get("episode_metrics") or {}).items():
                    self.logger.record_mean(f"episode/{key}", float(value))
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return CallbackList([Progress(), CheckpointCallback(max(checkpoint_every, 1), str(out / "checkpoints"),
                                                        name_prefix="model")])


def train(env_id: str, algo: str = "ppo", features: str = "raw", paired_budget: int = 8, steps: int = 100_000,
          seed: int = 0, device: str = "auto", out: str | Path = "runs/agent", recurrent: bool = False,
          lm_dir: str = "runs/lm", mapping: str = "regression", checkpoint_every: int = 25_000,
          progress: bool = True, reward: str = "env"):
    """Train and save an agent (see the module docstring); returns the SB3 model."""
    from agents.features import EXTRACTORS

    if algo not in ALGOS:
        raise ConfigError(f"--algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    if features not in EXTRACTORS:
        raise ConfigError(f"--features must be one of {', '.join(EXTRACTORS)}, got {features!r}")
    out = Path(out)
    config = load_config(env_id, algo)
    env_kwargs = dict(config.pop("env_kwargs", {}) or {})
    env_kwargs.update({"paired_budget": paired_budget} if paired_budget else {"split": "train"})
    env = gym.make(env_id, **env_kwargs)
    if reward == "lm":  # the closed loop: LM^A's likelihood of the agent's own audio instead of the env's reward
        from agents.lm.reward import LMRewardWrapper

        lm_path = Path(lm_dir) / "lm_a.pt"
        if not lm_path.is_file():
            raise ConfigError(f"{lm_path} not found; make it with python -m agents.pretrain --out {lm_dir}")
        try:
            env = LMRewardWrapper(env, str(lm_path))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    elif reward != "env":
        raise ConfigError(f"--reward must be 'env' or 'lm', got {reward!r}")
    if algo == "dqn" and not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(f"DQN needs a Discrete action space; {env_id} has {env.action_space}")
    if algo == "sac" and not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(f"SAC needs a continuous (Box) action space; {env_id} has {env.action_space}")
    extractor_kwargs = {"lm_dir": lm_dir, "method": mapping, "paired_budget": paired_budget} if features == "lmm" else {}
    policy_kwargs = {"features_extractor_class": EXTRACTORS[features], "features_extractor_kwargs": extractor_kwargs}
    try:
        import tensorboard  # noqa: F401

        tensorboard_log = str(out / "tb")
    except ImportError:
        tensorboard_log = None
    algorithm, policy = _algorithm(algo, recurrent)
    model = algorithm(policy, env, seed=seed, device=device, policy_kwargs=policy_kwargs,
                      tensorboard_log=tensorboard_log, verbose=0, **config)
    model.learn(steps, callback=make_callbacks(out, steps, checkpoint_every, progress))
    from lmm_envs.files import atomic_path

    with atomic_path(out / "model.zip") as tmp:
        model.save(tmp)
    run = {"env_id": env_id, "algo": algo, "recurrent": recurrent, "features": features, "paired_budget": paired_budget,
           "steps": steps, "seed": seed, "device": str(model.device), "env_kwargs": env_kwargs, "hyperparameters": config,
           "lm_dir": lm_dir if features == "lmm" else None, "mapping": mapping if features == "lmm" else None,
           "reward": reward, "track": track_of(paired_budget, steps)}
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="lmm/ScoreFollowing-v0")
    ap.add_argument("--algo", default="ppo", choices=ALGOS)
    ap.add_argument("--recurrent", action="store_true", help="RecurrentPPO (needs sb3-contrib)")
    ap.add_argument("--features", default="raw", choices=["raw", "lmm"])
    ap.add_argument("--paired-budget", type=int, default=8, help="train on the first K paired pieces (0: all train)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    ap.add_argument("--out", default="runs/agent")
    ap.add_argument("--lm-dir", default="runs/lm", help="pretrained LMs and mappings (python -m agents.pretrain)")
    ap.add_argument("--mapping", default="regression", choices=["regression", "predictive"])
    ap.add_argument("--checkpoint-every", type=int, default=25_000)
    ap.add_argument("--reward", default="env", choices=["env", "lm"],
                    help="lm: LM^A's log-likelihood of the agent's own audio (SightReading, PlayByEar)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        train(args.env, args.algo, args.features, args.paired_budget, args.steps, args.seed, args.device, args.out,
              args.recurrent, args.lm_dir, args.mapping, args.checkpoint_every, progress=not args.quiet,
              reward=args.reward)
    except LMMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / 'model.zip'}; evaluate it with: lmm-envs evaluate --env {args.env} "
          f"--agent {Path(args.out) / 'model.zip'} --track {track_of(args.paired_budget, args.steps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
