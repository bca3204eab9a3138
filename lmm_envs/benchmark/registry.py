"""Agents by name, without lmm_envs importing them.

An agent is any object with ``reset(obs, info)`` and ``act(obs, info) -> action``; a factory builds one from an
environment: ``factory(env, **kwargs)``. Names come from :func:`register_agent` and from the ``lmm_envs.agents``
entry-point group (the baselines in ``agents/`` register there in pyproject.toml, and so can any package).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from lmm_envs.errors import ConfigError

ENTRY_POINT_GROUP = "lmm_envs.agents"
_REGISTRY: dict[str, Callable[..., Agent]] = {}


@runtime_checkable
class Agent(Protocol):
    def reset(self, obs: Any, info: dict) -> None: ...

    def act(self, obs: Any, info: dict) -> Any: ...


def register_agent(name: str, factory: Callable[..., Agent]) -> None:
    """Make ``factory(env, **kwargs)`` available as ``name``."""
    _REGISTRY[name] = factory


def agent_names() -> list[str]:
    names = set(_REGISTRY)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def make_agent(name: str, env, **kwargs) -> Agent:
    """Build the agent registered as ``name`` for ``env``."""
    factory = _REGISTRY.get(name)
    if factory is None:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            raise ConfigError(f"unknown agent {name!r}; known agents: {', '.join(agent_names()) or 'none'}")
        try:
            factory = matches[0].load()
        except ImportError as e:
            raise ConfigError(f"agent {name!r} cannot be imported ({e}); is its package installed?") from None
    return factory(env, **kwargs)


TRAINER_GROUP = "lmm_envs.trainers"


def load_trainer(name: str) -> Callable[..., Any]:
    """The training function registered as ``name`` in the ``lmm_envs.trainers`` entry-point group (how the CLI's
    quickstart trains an agent without ``lmm_envs`` importing ``agents``)."""
    matches = [ep for ep in entry_points(group=TRAINER_GROUP) if ep.name == name]
    if not matches:
        raise ConfigError(f"no trainer {name!r} is installed; install the agents package (pip install -e .)")
    try:
        return matches[0].load()
    except ImportError as e:
        raise ConfigError(f"trainer {name!r} cannot be imported ({e}); is its package installed?") from None
