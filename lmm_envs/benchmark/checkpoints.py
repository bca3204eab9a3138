"""Loading Stable-Baselines3 checkpoints (``.zip``) as agents, without running pickled code.

SB3 stores weights as ``.pth`` files (read with ``torch.load(weights_only=True)``) and the rest in a JSON
``data`` entry, where some values (spaces, schedules, the policy class, sometimes ``policy_kwargs``) are
cloudpickled. Unpickling runs whatever code the file names, so by default every pickled value is replaced
before SB3 sees it: the spaces come from the env the agent is evaluated on, the policy class from the algorithm's
``MultiInputPolicy``/``MlpPolicy`` alias, and schedules (training-only) by constants. Pickled ``policy_kwargs``
(which name the network's classes) are read with a restricted unpickler that only accepts classes from an
allowlist (the extractors in ``agents.features``, torch activations and optimizers, plain containers); a
checkpoint naming anything else can only be loaded with ``trust=True``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

from lmm_envs.errors import ConfigError, MissingDependencyError

ALLOWED_MODULES = ("agents.features", "torch.nn.modules.activation", "torch.optim")
ALLOWED_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bool", "NoneType"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only references to allowlisted classes: nothing named in the file can run other code."""

    def find_class(self, module: str, name: str):
        if module == "builtins" and name in ALLOWED_BUILTINS:
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        if any(module == m or module.startswith(m + ".") for m in ALLOWED_MODULES) and not name.startswith("_"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not on the allowlist")


def safe_policy_kwargs(serialized: dict) -> dict | None:
    """SB3's pickled ``policy_kwargs``, if they name only allowlisted classes; None otherwise."""
    try:
        value = _RestrictedUnpickler(io.BytesIO(base64.b64decode(serialized[":serialized:"]))).load()
    except Exception:  # noqa: BLE001 - any failure means: not provably safe
        return None
    return value if isinstance(value, dict) else None


def _read_data(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise ConfigError(f"{path} is not a Stable-Baselines3 checkpoint (no 'data' and 'policy.pth' inside)")
            return json.loads(archive.read("data").decode())
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a Stable-Baselines3 checkpoint zip ({e})") from None


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
        policy_kwargs = safe_policy_kwargs(data["policy_kwargs"]) if "policy_kwargs" in pickled else None
        if "policy_kwargs" in pickled and policy_kwargs is None:
            raise ConfigError(f"{path} names a policy class outside the allowlist in its pickled policy_kwargs; "
                              "loading it runs code from the file. If you trust it, load it with trust=True "
                              "(CLI: --trust-checkpoint)")
        import gymnasium as gym

        dict_obs = isinstance(env.observation_space, gym.spaces.Dict)
        custom = {k: None for k in pickled}  # nothing pickled is unpickled; what prediction needs is set below
        if policy_kwargs is not None:
            custom["policy_kwargs"] = policy_kwargs
        custom.update({
            "observation_space": env.observation_space, "action_space": env.action_space,
            "policy_class": algo.policy_aliases["MultiInputPolicy" if dict_obs else "MlpPolicy"],
            "lr_schedule": lambda _: 0.0, "learning_rate": 0.0, "clip_range": lambda _: 0.2,
            "exploration_schedule": lambda _: 0.0,
        })
    try:
        model = algo.load(path, env=None, device=device, custom_objects=custom)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ConfigError(f"cannot load {path} for {getattr(env.spec, 'id', 'this env')} ({str(e).splitlines()[0]}); "
                          "was it trained on this env's observations?") from None
    obs_space = model.observation_space
    if obs_space != env.observation_space:
        raise ConfigError(f"{path} was trained on observations {obs_space}, not this env's {env.observation_space}")
    return SB3Agent(model, path)
