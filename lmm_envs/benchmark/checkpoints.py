"""Loading Stable-Baselines3 checkpoints (``.zip``) as agents, without running code from the file.

SB3 stores weights as ``.pth`` files (read with ``torch.load(weights_only=True)``) and the rest in a JSON
``data`` entry, where some values (spaces, schedules, the policy class, ``policy_kwargs``) are cloudpickled.
Unpickling runs whatever code the file names, so by default no pickled value reaches SB3: the spaces come from
the env the agent is evaluated on, the policy class from the algorithm's ``MultiInputPolicy``/``MlpPolicy``
alias, and schedules (training-only) are constants. The pickled ``policy_kwargs`` (which name the network's
classes) are read by :func:`safe_policy_kwargs`, which refuses the stream unless

1. it holds only opcodes that build plain data (no ``REDUCE``, ``BUILD``, ``NEWOBJ``, ``INST``, ``OBJ``,
   persistent ids or extension codes: nothing in it can call anything), and
2. every class it names is one of the exact ``(module, name)`` pairs of :data:`ALLOWED_CLASSES` (no dotted
   names, no attribute of a module reached through another), and
3. what it decodes to is a dict of plain values and those classes.

A checkpoint that needs anything else loads only with ``trust=True`` (CLI: ``--trust-checkpoint``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import io
import json
import pickle
import pickletools
import zipfile
from pathlib import Path

from lmm_envs.errors import ConfigError, MissingDependencyError

_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "Mish", "SELU",
                "Hardtanh", "ReLU6", "CELU", "Softsign", "Tanhshrink", "Hardswish", "Hardsigmoid", "PReLU")
ALLOWED_CLASSES: frozenset[tuple[str, str]] = frozenset({
    ("agents.features", "RawExtractor"),
    ("agents.features", "LMMExtractor"),
    ("agents.features", "MatchExtractor"),
    ("agents.features", "HearExtractor"),
    ("stable_baselines3.common.torch_layers", "CombinedExtractor"),
    ("stable_baselines3.common.torch_layers", "FlattenExtractor"),
    ("stable_baselines3.common.torch_layers", "NatureCNN"),
    ("stable_baselines3.common.sb2_compat.rmsprop_tf_like", "RMSpropTFLike"),
    ("torch.optim.adam", "Adam"),
    ("torch.optim.adamw", "AdamW"),
    ("torch.optim.rmsprop", "RMSprop"),
    ("torch.optim.sgd", "SGD"),
    *(("torch.nn.modules.activation", name) for name in _ACTIVATIONS),
    ("builtins", "set"),
    ("builtins", "frozenset"),
})
"""The only globals a checkpoint's ``policy_kwargs`` may name without ``trust``: network and optimizer classes."""

SAFE_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
    "GET", "BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG",
    "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
    "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "EMPTY_LIST",
    "APPEND", "APPENDS", "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_DICT", "DICT",
    "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS", "FROZENSET", "GLOBAL", "STACK_GLOBAL",
})
"""Opcodes that only build data or name a global (resolved through the exact allowlist); none calls anything."""


def resolve_global(module: str, name: str):
    """The object ``module.name`` for an allowlisted pair; anything else is refused without importing it."""
    if (module, name) not in ALLOWED_CLASSES:
        raise pickle.UnpicklingError(f"{module}.{name} is not on the allowlist")
    return getattr(importlib.import_module(module), name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the exact pairs of :data:`ALLOWED_CLASSES` (and keeps what it resolved); persistent ids are
    refused."""

    def __init__(self, file):
        super().__init__(file)
        self.resolved: list = []

    def find_class(self, module: str, name: str):
        found = resolve_global(module, name)
        self.resolved.append(found)
        return found

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _plain(value, allowed: list, depth: int = 0) -> bool:
    """Whether ``value`` is plain data (None, numbers, strings, containers of them) or an allowlisted class."""
    if depth > 50:
        return False
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, type):
        return any(value is c for c in allowed)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, allowed, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(v, allowed, depth + 1) for v in value)
    return False


def safe_policy_kwargs(serialized: dict) -> dict | None:
    """SB3's pickled ``policy_kwargs``, if the stream passes the three checks of the module docstring; None
    otherwise (never an exception, never a call into anything the stream names)."""
    try:
        blob = base64.b64decode(str(serialized[":serialized:"]), validate=False)
        for opcode, _arg, _pos in pickletools.genops(blob):
            if opcode.name not in SAFE_OPCODES:
                return None
        unpickler = _RestrictedUnpickler(io.BytesIO(blob))
        value = unpickler.load()
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, EOFError, IndexError, AttributeError,
            ImportError, OverflowError, MemoryError, RecursionError, binascii.Error, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and _plain(value, unpickler.resolved) else None


def _read_data(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise ConfigError(f"{path} is not a Stable-Baselines3 checkpoint (no 'data' and 'policy.pth' inside)")
            data = json.loads(archive.read("data").decode())
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        reason = "JSON nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ConfigError(f"{path} is not a Stable-Baselines3 checkpoint zip ({reason})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a Stable-Baselines3 checkpoint zip (its 'data' is not a JSON object)")
    return data


def detect_algorithm(data: dict) -> str:
    """The SB3 algorithm that wrote a checkpoint, from the hyperparameters it stores."""
    if "clip_range" in data and "n_epochs" in data:
        return "PPO"
    if "exploration_fraction" in data or "exploration_rate" in data:
        return "DQN"
    if "target_entropy" in data or "ent_coef_optimizer" in data:
        return "SAC"
    if "policy_delay" in data:
        return "TD3"
    if "n_steps" in data and "gae_lambda" in data:
        return "A2C"
    raise ConfigError("cannot tell which SB3 algorithm wrote this checkpoint (PPO, A2C, DQN, SAC or TD3 expected)")


class SB3Agent:
    """An SB3 model as an agent: ``act`` is ``model.predict(obs, deterministic=True)``."""

    def __init__(self, model, path: Path):
        self.model = model
        self.path = path

    def reset(self, obs, info) -> None:
        pass

    def act(self, obs, info):
        action, _ = self.model.predict(obs, deterministic=True)
        return action


def checkpoint_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_sb3_agent(path: str | Path, env, trust: bool = False, device: str = "cpu") -> SB3Agent:
    """Load an SB3 ``.zip`` for ``env`` (see the module docstring for what is and is not unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found")
    data = _read_data(path)
    algo_name = detect_algorithm(data)
    try:
        import stable_baselines3 as sb3
    except ImportError:
        raise MissingDependencyError("loading a checkpoint needs stable-baselines3: pip install stable-baselines3") \
            from None
    algo = getattr(sb3, algo_name)
    custom: dict = {}
    if not trust:
        pickled = {k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v}
        if "policy_kwargs" in pickled:
            policy_kwargs = safe_policy_kwargs(data["policy_kwargs"])
        else:  # written as plain JSON: plain values only
            policy_kwargs = data.get("policy_kwargs", {})
            policy_kwargs = policy_kwargs if _plain(policy_kwargs, []) else None
        if not isinstance(policy_kwargs, dict):
            raise ConfigError(f"{path} holds policy_kwargs that name code or classes outside the allowlist; loading "
                              "them would run code from the file. If you trust it, load it with trust=True "
                              "(CLI: --trust-checkpoint)")
        import gymnasium as gym

        dict_obs = isinstance(env.observation_space, gym.spaces.Dict)
        custom = {k: None for k in pickled}  # nothing pickled is unpickled; what prediction needs is set below
        custom["policy_kwargs"] = policy_kwargs
        custom.update({
            "observation_space": env.observation_space, "action_space": env.action_space,
            "policy_class": algo.policy_aliases["MultiInputPolicy" if dict_obs else "MlpPolicy"],
            "lr_schedule": lambda _: 0.0, "learning_rate": 0.0, "clip_range": lambda _: 0.2,
            "exploration_schedule": lambda _: 0.0,
        })
    try:
        model = algo.load(path, env=None, device=device, custom_objects=custom)
    except Exception as e:  # noqa: BLE001 - a user's file: whatever fails inside SB3 or torch is one line
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"cannot load {path} for {getattr(env.spec, 'id', 'this env')} ({first}); "
                          "was it trained on this env's observations?") from None
    obs_space = model.observation_space
    if obs_space != env.observation_space:
        raise ConfigError(f"{path} was trained on observations {obs_space}, not this env's {env.observation_space}")
    return SB3Agent(model, path)
