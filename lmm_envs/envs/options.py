"""Env options checked once, by type, before an env is built.

Every keyword of an env's ``__init__`` (its own and those of :class:`~lmm_envs.envs.base.LMMEnv`) is read from the
type hints; a value of the wrong type is a :class:`~lmm_envs.errors.ConfigError` that names the option and the type
it takes. The envs still check ranges and choices themselves (``reward_width > 0``, ``polyphony`` in mono/poly).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from lmm_envs.errors import ConfigError


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` (the subset of typing the envs' signatures use)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint is int:
        return isinstance(value, numbers.Integral) and not _matches(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not _matches(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (tuple, list)) or len(value) != len(args):
            return False
        return all(_matches(v, h) for v, h in zip(value, args, strict=True))
    if origin is list or hint is list:
        return isinstance(value, list)
    if origin is not None:
        return isinstance(value, origin)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is None or hint is type(None):
        return "None"
    names = {bool: "true/false", int: "an integer", float: "a finite number", str: "a string", list: "a list",
             Path: "a path"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) is tuple:
        return f"a pair ({', '.join(_describe(h) for h in typing.get_args(hint))})"
    return getattr(hint, "__name__", str(hint))


@functools.cache
def option_types(env_class: type) -> dict[str, Any]:
    """The type hint of every option of ``env_class`` (keywords of its and its bases' ``__init__``)."""
    from lmm_envs.envs.base import LMMEnv

    hints: dict[str, Any] = {}
    for klass in reversed(env_class.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or not issubclass(klass, LMMEnv):
            continue
        params = inspect.signature(init).parameters
        found = typing.get_type_hints(init)
        hints.update({n: found.get(n, Any) for n, p in params.items()
                      if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)})
    return hints


def check_options(env_class: type, options: dict) -> None:
    """Refuse unknown options and values of the wrong type, naming the option (one :class:`ConfigError`)."""
    if not isinstance(options, dict):
        raise ConfigError(f"env options must be a dict of keyword arguments, got {type(options).__name__}")
    hints = option_types(env_class)
    unknown = sorted(k for k in options if k not in hints)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(str, unknown))} for {env_class.__name__}; "
                          f"known options: {', '.join(sorted(hints))}")
    for name, value in options.items():
        if not _matches(value, hints[name]):
            raise ConfigError(f"option {name} of {env_class.__name__} must be {_describe(hints[name])}, "
                              f"got {value!r:.80}")
    render_mode = options.get("render_mode")
    modes = getattr(env_class, "metadata", {}).get("render_modes", [])
    if render_mode is not None and render_mode not in modes:
        raise ConfigError(f"option render_mode must be one of {modes} or None, got {render_mode!r:.80}")


def env_class(env_id: str) -> type:
    """The single-env class registered as ``env_id``."""
    import gymnasium as gym

    import lmm_envs  # noqa: F401  (registers ids)

    if env_id not in gym.registry:
        known = ", ".join(k for k in gym.registry if k.startswith("lmm/"))
        raise ConfigError(f"unknown env id {env_id!r}; known: {known}")
    entry = gym.registry[env_id].entry_point
    if not isinstance(entry, str):
        return entry
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def check_env_options(env_id: str, options: dict) -> None:
    """:func:`check_options` for a registered id (call it before ``gym.make``, which acts on some options)."""
    check_options(env_class(env_id), options)
