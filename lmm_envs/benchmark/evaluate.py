"""Running agents on environments: one episode, or a list of (piece, rendering) pairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from lmm_envs.benchmark.registry import Agent, make_agent


class CallableAgent:
    """Wraps a plain function ``policy(obs, info) -> action`` (or ``policy(obs)``) as an agent."""

    def __init__(self, policy: Callable[..., Any]):
        import inspect

        self.policy = policy
        try:
            self._takes_info = len(inspect.signature(policy).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_info = False

    def reset(self, obs, info) -> None:
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset(obs, info)

    def act(self, obs, info):
        return self.policy(obs, info) if self._takes_info else self.policy(obs)


def as_agent(agent: str | Agent | Callable, env: gym.Env) -> Agent:
    """A baseline name, an agent object or a plain callable, as an agent for ``env``."""
    if isinstance(agent, str):
        return make_agent(agent, env)
    if isinstance(agent, Agent):
        return agent
    if callable(agent):
        return CallableAgent(agent)
    raise TypeError(f"cannot use {type(agent).__name__} as an agent")


def run_episode(env: gym.Env, agent: str | Agent | Callable, seed: int | None = None,
                options: dict | None = None, record: Callable[[gym.Env], None] | None = None) -> dict:
    """Play one episode; returns ``{"piece_id", "return", "steps", "metrics"}`` (metrics from the final info)."""
    agent = as_agent(agent, env)
    obs, info = env.reset(seed=seed, options=options)
    agent.reset(obs, info)
    total, steps = 0.0, 0
    if record is not None:
        record(env)
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        total += float(reward)
        steps += 1
        if record is not None:
            record(env)
        if terminated or truncated:
            break
    metrics = info.get("episode_metrics")
    if metrics is None:
        metrics = env.unwrapped.episode_metrics()
    return {"piece_id": info.get("piece_id"), "return": total, "steps": steps, "metrics": metrics}
