"""Imitation warm starts for SB3 policies: behaviour cloning and DAgger from the ``oracle`` agent.

Written against Stable-Baselines3's ``ActorCriticPolicy`` (the policy of PPO and A2C), so any on-policy SB3
algorithm can continue from the result. The ``imitation`` package pins older gymnasium and SB3 releases than this
project needs, so the two algorithms are written here; both are short:

- behaviour cloning minimises ``-log pi(a_expert | s)`` over the demonstrations, minus a small entropy bonus (so
  that PPO can still explore afterwards), plus the value head's error against the demonstrations' discounted
  returns (so that PPO's first updates do not start from an untrained critic);
- DAgger (Ross et al., 2011) repeats: roll out a mix of expert and learner (the expert acts with probability
  ``beta``, decaying each round), label every visited state with the expert's action, add it to the data set,
  clone again. The learner so sees the states its own mistakes lead to, which plain cloning never shows it.

Every environment step taken here counts towards a run's step budget; :func:`warm_start` returns how many.

An extractor with frozen pretrained networks (:class:`agents.features.PretrainedParts`: ``lmm``, ``hear``) gives
the same output for a state in every epoch, so cloning computes it once per demonstrated state (:func:`encode`)
and trains the rest of the policy on it; for ``lmm`` that part was about 97% of a cloning step.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import DummyVecEnv

from lmm_envs.errors import ConfigError


@dataclass
class Demonstrations:
    """Observations (a dict of arrays), the expert's actions, and the discounted return from each state."""

    obs: dict[str, np.ndarray] = field(default_factory=dict)
    actions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def extend(self, other: Demonstrations) -> Demonstrations:
        if not len(self):
            return other
        return Demonstrations({k: np.concatenate([v, other.obs[k]]) for k, v in self.obs.items()},
                              np.concatenate([self.actions, other.actions]),
                              np.concatenate([self.returns, other.returns]))


def discounted_returns(rewards: np.ndarray, episode_starts: np.ndarray, gamma: float) -> np.ndarray:
    """Per-step discounted return within each episode (``episode_starts[t]``: step t begins a new episode)."""
    out = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
        if episode_starts[t]:
            running = 0.0
    return out


def make_expert(env, teacher: str = "oracle"):
    """The teacher for ``env``: a registered agent that acts from the ground truth (by default the ``oracle``)."""
    from lmm_envs.benchmark.registry import make_agent

    return make_agent(teacher, env)


def collect(env_fns: list, steps: int, seed: int, gamma: float, policy: ActorCriticPolicy | None = None,
            beta: float = 1.0, progress=None, teacher: str = "oracle") -> Demonstrations:
    """``steps`` env steps over the envs of ``env_fns`` (one teacher per env, :func:`make_expert`, labels every
    state). The teacher acts with probability ``beta`` per step, the learner ``policy`` (greedy) otherwise."""
    venv = DummyVecEnv(env_fns)
    venv.seed(seed)
    oracles = [make_expert(env, teacher) for env in venv.envs]
    obs = venv.reset()
    infos = list(venv.reset_infos)

    def own(i: int) -> dict:
        return {k: v[i] for k, v in obs.items()}

    for i, (oracle, info) in enumerate(zip(oracles, infos, strict=True)):
        oracle.reset(own(i), info)
    rng = np.random.default_rng(seed)
    n = venv.num_envs
    per_env: list[dict[str, list]] = [{"obs": [], "actions": [], "rewards": [], "starts": []} for _ in range(n)]
    starts = np.ones(n, dtype=bool)
    for _ in range(max(steps // n, 1)):
        expert = np.array([oracle.act(own(i), info) for i, (oracle, info) in enumerate(zip(oracles, infos,
                                                                                            strict=True))])
        actions = expert.copy()
        if policy is not None and beta < 1.0:
            learner = rng.random(n) >= beta
            if learner.any():
                predicted, _ = policy.predict(obs, deterministic=True)
                actions[learner] = predicted[learner]
        for i in range(n):
            per_env[i]["obs"].append({k: v[i] for k, v in obs.items()})
            per_env[i]["actions"].append(expert[i])
            per_env[i]["starts"].append(starts[i])
        obs, rewards, dones, infos = venv.step(actions)
        infos = list(infos)
        for i in range(n):
            per_env[i]["rewards"].append(float(rewards[i]))
            if dones[i]:
                infos[i] = venv.reset_infos[i]
                oracles[i].reset(own(i), infos[i])
        starts = dones.copy()
        if progress is not None:
            progress.update(n)
    venv.close()
    parts = []
    for record in per_env:
        returns = discounted_returns(np.array(record["rewards"]), np.array(record["starts"]), gamma)
        parts.append(Demonstrations({k: np.stack([o[k] for o in record["obs"]]) for k in record["obs"][0]},
                                    np.array(record["actions"]), returns))
    data = Demonstrations()
    for part in parts:
        data = data.extend(part)
    return data


ENCODE_BATCH = 256


@dataclass
class Encoded:
    """The frozen networks' output for every demonstrated state (:meth:`PretrainedParts.encode_frozen`), in order,
    kept as the chunks it was computed in (``chunks[c]``: the parts, batch first, of states ``starts[c]`` on), so
    that DAgger's growing data set is never copied whole; ``single`` when the extractor returns one tensor rather
    than a tuple."""

    chunks: list[tuple[torch.Tensor, ...]]
    single: bool

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum([0] + [len(chunk[0]) for chunk in self.chunks[:-1]])

    def __len__(self) -> int:
        return int(sum(len(chunk[0]) for chunk in self.chunks))

    def take(self, idx):
        """The encodings of the states ``idx``, as the extractor's ``forward_encoded`` takes them."""
        idx = np.asarray(idx)
        starts = self.starts
        which = np.searchsorted(starts, idx, side="right") - 1
        taken = []
        for p, first in enumerate(self.chunks[0]):
            out = first.new_empty((len(idx), *first.shape[1:]))
            for c in np.unique(which):
                rows = np.flatnonzero(which == c)
                out[torch.as_tensor(rows)] = self.chunks[c][p][torch.as_tensor(idx[rows] - starts[c])]
            taken.append(out)
        return taken[0] if self.single else tuple(taken)

    def extend(self, other: Encoded | None) -> Encoded:
        return self if other is None else Encoded(self.chunks + other.chunks, self.single)


def encodes_frozen(policy: ActorCriticPolicy) -> bool:
    """Whether ``policy``'s (shared) features extractor has frozen parts it can encode once (:func:`encode`)."""
    return policy.share_features_extractor and hasattr(policy.features_extractor, "encode_frozen")


def _tensors(policy: ActorCriticPolicy, obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Observations as the features extractor sees them: tensors on the policy's device, preprocessed as SB3 does
    (image windows scaled to [0, 1])."""
    tensors = policy.obs_to_tensor(obs)[0]
    return preprocess_obs(tensors, policy.observation_space, normalize_images=policy.normalize_images)


def encode(policy: ActorCriticPolicy, data: Demonstrations) -> Encoded | None:
    """The frozen parts' output for every state of ``data`` (``None`` where the extractor has none)."""
    if not encodes_frozen(policy) or not len(data):
        return None
    extractor = policy.features_extractor
    chunks = []
    with torch.no_grad():
        for start in range(0, len(data), ENCODE_BATCH):
            out = extractor.encode_frozen(_tensors(policy, {k: v[start:start + ENCODE_BATCH]
                                                            for k, v in data.obs.items()}))
            parts = out if isinstance(out, tuple) else (out,)
            chunks.append(tuple(part.contiguous() for part in parts))  # no view keeping a larger tensor alive
    return Encoded(chunks, single=not isinstance(out, tuple))


def _latents_encoded(policy: ActorCriticPolicy, encoded, obs: dict[str, torch.Tensor]):
    """The actor's action distribution and the critic's latent, with the frozen parts' output given (a shared
    extractor)."""
    latent_pi, latent_vf = policy.mlp_extractor(policy.features_extractor.forward_encoded(encoded, obs))
    return policy._get_action_dist_from_latent(latent_pi), latent_vf


def _evaluate_encoded(policy: ActorCriticPolicy, encoded, obs: dict[str, torch.Tensor],
                      actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``policy.evaluate_actions`` with the frozen parts' output given (a shared extractor)."""
    distribution, latent_vf = _latents_encoded(policy, encoded, obs)
    return policy.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()


def behaviour_cloning(policy: ActorCriticPolicy, data: Demonstrations, epochs: int = 4, batch_size: int = 256,
                      learning_rate: float = 3e-4, ent_coef: float = 1e-3, vf_coef: float = 0.5,
                      seed: int = 0, encoded: Encoded | None = None,
                      cache_frozen: bool = True) -> dict[str, float]:
    """Fit ``policy`` to the demonstrations (see the module docstring); returns the last epoch's mean losses and
    the share of expert actions the policy now takes greedily. With ``cache_frozen`` (the default) the frozen
    parts of the extractor run once per state (``encoded`` where the caller has it already, as DAgger does
    across rounds), not once per epoch; ``False`` runs the whole policy on every minibatch."""
    if not len(data):
        raise ConfigError("no demonstrations to clone")
    encoded = (encoded if encoded is not None else encode(policy, data)) if cache_frozen else None
    if encoded is not None and len(encoded) != len(data):
        raise ConfigError(f"{len(encoded)} encoded states for {len(data)} demonstrations")
    device = policy.device
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    policy.set_training_mode(True)
    stats: dict[str, float] = {}
    for _ in range(epochs):
        order = rng.permutation(len(data))
        sums = {"nll": 0.0, "entropy": 0.0, "value": 0.0}
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            actions = torch.as_tensor(data.actions[idx], device=device)
            returns = torch.as_tensor(data.returns[idx], dtype=torch.float32, device=device)
            if encoded is not None:
                obs = _tensors(policy, {k: v[idx] for k, v in data.obs.items()})
                values, log_prob, entropy = _evaluate_encoded(policy, encoded.take(idx), obs, actions)
            else:
                obs = policy.obs_to_tensor({k: v[idx] for k, v in data.obs.items()})[0]
                values, log_prob, entropy = policy.evaluate_actions(obs, actions)
            nll = -log_prob.mean()
            ent = entropy.mean() if entropy is not None else torch.zeros((), device=device)
            value_loss = torch.nn.functional.mse_loss(values.flatten(), returns)
            loss = nll - ent_coef * ent + vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimizer.step()
            for key, value in (("nll", nll), ("entropy", ent), ("value", value_loss)):
                sums[key] += float(value.detach()) * len(idx)
        stats = {k: v / len(order) for k, v in sums.items()}
    policy.set_training_mode(False)
    stats["agreement"] = agreement(policy, data, encoded=encoded)
    return stats


def agreement(policy: ActorCriticPolicy, data: Demonstrations, limit: int = 4096,
              encoded: Encoded | None = None) -> float:
    """Share of (up to ``limit``) demonstrated states where the policy's greedy action is the expert's
    (``encoded``: the frozen parts' output for ``data``, used for discrete actions)."""
    n = min(len(data), limit)
    if encoded is not None and not isinstance(policy.action_space, gym.spaces.Box):
        predicted = []
        with torch.no_grad():
            for start in range(0, n, ENCODE_BATCH):
                idx = np.arange(start, min(start + ENCODE_BATCH, n))
                obs = _tensors(policy, {k: v[idx] for k, v in data.obs.items()})
                distribution, _ = _latents_encoded(policy, encoded.take(idx), obs)
                predicted.append(distribution.get_actions(deterministic=True))
        predicted = torch.cat(predicted).cpu().numpy().reshape((n, *policy.action_space.shape))
    else:
        predicted, _ = policy.predict({k: v[:n] for k, v in data.obs.items()}, deterministic=True)
    return float(np.mean(np.all(np.reshape(predicted == data.actions[:n], (n, -1)), axis=1)))


@dataclass
class WarmStart:
    """What a warm start did: its method, the env steps it took, and per round the data size and fit."""

    method: str
    teacher: str = "oracle"
    env_steps: int = 0
    rounds: list[dict] = field(default_factory=list)


def warm_start(policy: ActorCriticPolicy, method: str, make_env, steps: int, n_envs: int = 8, seed: int = 0,
               gamma: float = 0.9, rounds: int = 4, epochs: int = 10, progress: bool = False,
               teacher: str = "oracle", on_round=None, keep: str | Path | None = None,
               log: Callable[[str], None] | None = None) -> WarmStart:
    """Behaviour cloning (``method="bc"``) or DAgger (``"dagger"``) of ``policy`` from the oracle, within ``steps``
    env steps in all; ``make_env()`` makes one single env of the run's pieces. ``on_round(env_steps)`` is called
    after each round's fit.

    ``keep``: a folder where every finished round is kept (its demonstrations, the policy after it, the record so
    far; :class:`KeptRounds`). A warm start given a folder that holds rounds of the same settings carries on after
    the last of them, and ends with the policy an uninterrupted one would have: a long DAgger cut off by a time
    limit loses at most the round it was in. ``log`` gets one line after each round (for runs without a progress
    bar: several at once, or in the background)."""
    if method not in ("bc", "dagger"):
        raise ConfigError(f"--warm-start must be bc or dagger, got {method!r}")
    if steps < n_envs:
        raise ConfigError(f"a warm start needs at least {n_envs} env steps, got {steps}")
    from tqdm import tqdm

    bar = tqdm(total=steps, desc=f"warm start ({method})", disable=not progress, unit="step")
    record = WarmStart(method, teacher=teacher)
    n_rounds = 1 if method == "bc" else max(rounds, 1)
    per_round = steps // n_rounds
    data = Demonstrations()
    encoded = None  # the frozen parts' output for ``data``, state by state: it does not change between rounds
    kept = None if keep is None else KeptRounds(Path(keep), dict(method=method, steps=steps, n_envs=n_envs, seed=seed,
                                                                 gamma=gamma, rounds=n_rounds, epochs=epochs,
                                                                 teacher=teacher))
    first = 0
    if kept is not None and kept.done():
        record, parts = kept.load(policy)
        first = len(parts)
        for part in parts:  # extended and encoded a round at a time, as they were when collected
            data = data.extend(part)
            part_encoded = encode(policy, part)
            encoded = part_encoded if encoded is None else encoded.extend(part_encoded)
        bar.update(record.env_steps)
    began = time.monotonic()
    for r in range(first, n_rounds):
        beta = 1.0 if r == 0 else 0.5 ** r  # DAgger: the expert's share of the acting halves each round
        new = collect([make_env for _ in range(n_envs)], per_round, seed + 1000 * r, gamma,
                      policy if r else None, beta, bar, teacher)
        record.env_steps += len(new)
        data = data.extend(new)
        new_encoded = encode(policy, new)
        encoded = new_encoded if encoded is None else encoded.extend(new_encoded)
        fit = behaviour_cloning(policy, data, epochs=epochs, seed=seed + r, encoded=encoded)
        record.rounds.append({"round": r, "beta": beta, "states": len(data), **fit})
        if kept is not None:
            kept.add(new, policy, record)
        if log is not None:
            log(f"{method} round {r + 1} of {n_rounds}: {record.env_steps} of {steps} env steps, {len(data)} states, "
                f"agreement with the {teacher} {fit['agreement']:.2f} ({(time.monotonic() - began) / 60:.1f} min)")
        if on_round is not None:  # e.g. a validation of the policy so far, at record.env_steps
            on_round(record.env_steps)
    bar.close()
    return record


class KeptRounds:
    """A warm start's finished rounds on disk, so that a cut-off one carries on (:func:`warm_start`'s ``keep``).

    ``round_<r>.npz`` holds round r's new demonstrations, ``policy_<r>.pt`` the policy after it, and
    ``record.json`` (written last, so it names only rounds whose files are complete) the settings and the record
    so far; the policies of earlier rounds are then removed. Each file is replaced atomically. The rounds' data takes about 230 bytes a ScoreFollowing state
    compressed (10 kB in memory); a run removes the folder once its warm start is done and kept as its first
    checkpoint."""

    def __init__(self, folder: Path, settings: dict):
        self.folder, self.settings = folder, settings

    def _record(self) -> dict | None:
        path = self.folder / "record.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def done(self) -> int:
        """The rounds kept (0 for an empty or missing folder); a folder of other settings is an error."""
        saved = self._record()
        if saved is None:
            return 0
        if saved["settings"] != self.settings:
            differ = sorted(k for k in self.settings if saved["settings"].get(k) != self.settings[k])
            raise ConfigError(f"{self.folder} holds the rounds of a warm start with other settings ({', '.join(differ)} "
                              "differ); remove the folder to start this one afresh, or resume with the same settings")
        return len(saved["record"]["rounds"])

    def load(self, policy: ActorCriticPolicy) -> tuple[WarmStart, list[Demonstrations]]:
        """The record and each kept round's demonstrations; ``policy`` gets the weights it had after the last."""
        saved = self._record()
        done = len(saved["record"]["rounds"])
        policy.load_state_dict(torch.load(self.folder / f"policy_{done - 1}.pt", map_location=policy.device,
                                          weights_only=True))
        parts = []
        for r in range(done):
            with np.load(self.folder / f"round_{r}.npz") as f:
                obs = {k[len("obs_"):]: f[k] for k in f.files if k.startswith("obs_")}
                parts.append(Demonstrations(obs, f["actions"], f["returns"]))
        print(f"warm start: carrying on after round {done} of {self.settings['rounds']} kept in {self.folder} "
              f"({saved['record']['env_steps']} env steps done)", file=sys.stderr)
        return WarmStart(**saved["record"]), parts

    def add(self, new: Demonstrations, policy: ActorCriticPolicy, record: WarmStart) -> None:
        """Keep a finished round: its new demonstrations, the policy after it, then the record that names it."""
        from lmm_envs.files import atomic_path

        r = len(record.rounds) - 1
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"round_{r}.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, actions=new.actions, returns=new.returns,
                                **{f"obs_{k}": v for k, v in new.obs.items()})
        with atomic_path(self.folder / f"policy_{r}.pt") as tmp:
            torch.save(policy.state_dict(), tmp)
        with atomic_path(self.folder / "record.json") as tmp:
            tmp.write_text(json.dumps({"settings": self.settings, "record": asdict(record)}, default=float))
        for earlier in range(r):
            (self.folder / f"policy_{earlier}.pt").unlink(missing_ok=True)


def single_env_factory(env_id: str, **env_kwargs):
    """A picklable-enough factory of single envs for :func:`warm_start`."""
    def make():
        return gym.make(env_id, **env_kwargs)

    return make
