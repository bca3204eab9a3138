"""The quickstart's learner: DAgger from the oracle, then PPO, on the 8 paired pieces of track 8/100k.

A minute on two CPU cores: ``lmm-envs quickstart`` calls :func:`train_quick_agent` (found through the
``lmm_envs.trainers`` entry point, so that ``lmm_envs`` does not import ``agents``). The network reads the
``match`` features (:class:`agents.features.MatchExtractor`); half of the env steps go to the warm start, the rest
to PPO with small, clipped updates so that it refines the cloned policy rather than unlearning it.
"""

from __future__ import annotations

from pathlib import Path


def train_quick_agent(env_id: str, path: Path, steps: int, progress: bool, seed: int = 0,
                      paired_budget: int = 8, n_envs: int = 16) -> list[tuple[int, float]]:
    """Train, save to ``path`` (an SB3 zip) and return the learning curve: (env steps, episode return) of every
    episode PPO finished, counted after the warm start's steps."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.features import MatchExtractor
    from agents.imitation import single_env_factory, warm_start
    from agents.train import load_config
    from agents.vec_env import make_training_env
    from lmm_envs.files import atomic_path

    config = load_config(env_id, "ppo", n_envs, warm_start=True)  # the env's PPO settings after a warm start
    config.pop("env_kwargs", None)
    venv = make_training_env(env_id, n_envs, seed, paired_budget=paired_budget)
    model = PPO("MultiInputPolicy", venv, seed=seed, device="cpu",
                policy_kwargs={"features_extractor_class": MatchExtractor}, **config)
    warm = warm_start(model.policy, "dagger", single_env_factory(env_id, paired_budget=paired_budget),
                      steps // 2, seed=seed, gamma=config["gamma"], progress=progress)

    class Curve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.points: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                if "episode" in info:
                    self.points.append((warm.env_steps + self.num_timesteps, float(info["episode"]["r"])))
            return True

    curve = Curve()
    model.learn(max(steps - warm.env_steps, 1), callback=curve, progress_bar=False)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return curve.points
