"""Running agents on environments: one episode, or a list of (piece, rendering) pairs."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from lmm_envs.benchmark.protocol import bootstrap_interval, normalised
from lmm_envs.benchmark.registry import Agent, make_agent
from lmm_envs.errors import ConfigError


class CallableAgent:
    """Wraps a plain function ``policy(obs, info) -> action`` (or ``policy(obs)``) as an agent."""

    def __init__(self, policy: Callable[..., Any]):
        import inspect

        self.policy = policy
        try:
            params = inspect.signature(policy).parameters.values()
            required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                                  p.POSITIONAL_OR_KEYWORD)]
            self._takes_info = len(required) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
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


# --- evaluation under the protocol ---------------------------------------------------------------------------
RESULT_FORMAT = 2
PROTOCOL_OPTIONS = {"split": "the protocol's split", "pieces": "--pieces", "synth": "--synth",
                    "paired_budget": "the track (--track)", "render_mode": "lmm-envs render",
                    "performances_per_piece": "the protocol's renderings (2 per piece)"}


def _episode_seed(index: int) -> int:
    return 1000 + index


def _make_eval_env(env_id: str, env_kwargs: dict, pieces, expressiveness: float, synth: str, split: str):
    import lmm_envs  # noqa: F401  (registers ids)

    kwargs = dict(env_kwargs, expressiveness=expressiveness, synth=synth)
    kwargs.update({"pieces": pieces} if pieces is not None else {"split": split})
    return gym.make(env_id, **kwargs)


def _build_agent(spec, env, trust: bool):
    from pathlib import Path

    if isinstance(spec, str) and spec.endswith(".zip"):
        from lmm_envs.benchmark.checkpoints import load_sb3_agent

        return load_sb3_agent(Path(spec), env, trust=trust)
    return as_agent(spec, env)


def _run_chunk(task: dict, on_episode: Callable[[], None] | None = None) -> list[tuple[int, dict]]:
    """Run some episodes of an evaluation (in this process or a worker) with one env per expressiveness level;
    returns (index, row) pairs and calls ``on_episode`` after each episode."""
    from lmm_envs.errors import LMMWarning

    with warnings.catch_warnings():  # the pieces' warnings were shown once when the episodes were listed
        warnings.simplefilter("ignore", LMMWarning)
        return _run_episodes(task, on_episode)


def _one_torch_thread() -> None:
    """One intra-op thread for torch in an evaluation worker: with torch's default (one per core) in each of
    several workers the cores are oversubscribed, and a checkpoint's batch-of-one forward passes slow down many
    times over."""
    import torch

    torch.set_num_threads(1)


def _run_episodes(task: dict, on_episode: Callable[[], None] | None) -> list[tuple[int, dict]]:
    out = []
    envs: dict = {}
    agents: dict = {}
    for index, episode in task["episodes"]:
        e = episode["expressiveness"]
        if e not in envs:
            envs[e] = _make_eval_env(task["env_id"], task["env_kwargs"], task["pieces"], e, task["synth"],
                                     task["split"])
        env = envs[e]
        spec = task["agent"]
        reusable = isinstance(spec, str) and spec.endswith(".zip")
        agent = agents.get(e) if reusable else None
        if agent is None:
            if reusable and task.get("one_thread"):
                _one_torch_thread()
            agent = _build_agent(spec, env, task["trust"])
            if reusable:
                agents[e] = agent
        row = run_episode(env, agent, seed=_episode_seed(index),
                          options={"piece": episode["piece_index"], "variant": episode["variant"]})
        row.update(variant=episode["variant"], expressiveness=e)
        out.append((index, row))
        if on_episode is not None:
            on_episode()
    return out


def protocol_episodes(env_id: str, pieces=None, limit: int | None = None, synth: str = "harmonic",
                      env_kwargs: dict | None = None, subset: str = "spread") -> list[dict]:
    """The episodes of the protocol of ``env_id`` (or of a user's pieces under the same settings); ``limit``
    pieces of them chosen as ``subset`` says (:func:`lmm_envs.benchmark.protocol.subset_indices`)."""
    from lmm_envs.benchmark.protocol import get_protocol, subset_indices

    proto = get_protocol(env_id)
    episodes = []
    levels = proto.expressiveness
    if env_kwargs and "expressiveness" in env_kwargs:  # the user's own level replaces the protocol's (custom)
        levels = (float(env_kwargs["expressiveness"]),)
    for e in levels:
        env = _make_eval_env(env_id, {**proto.env_kwargs, **(env_kwargs or {})}, pieces, e, synth, proto.split)
        sources = env.unwrapped.sources
        for i in subset_indices(len(sources), limit, subset):
            source = sources[i]
            recorded = hasattr(source, "alignment")  # a Piece with its own performance: one episode, no renderings
            for v in ((0,) if recorded else proto.variants):
                episodes.append({"piece_index": i, "variant": v, "expressiveness": e})
        env.close()
    return episodes


def _run_all(env_id, specs: dict[str, Any], episodes, env_kwargs, pieces, synth, split, workers, trust, progress,
             names: dict[str, str], ray_address: str | None = None) -> dict[str, list[dict]]:
    """Every episode for each agent of ``specs`` (who -> agent); returns who -> rows in episode order. In this
    process the agents run one after the other; in workers or on Ray, the chunks of all of them are queued at
    once, so that no core waits for the slowest chunk of one agent before the next agent starts."""
    from tqdm import tqdm

    from lmm_envs.parallel import connect_ray, run_tasks

    indexed = list(enumerate(episodes))
    base = dict(env_id=env_id, env_kwargs=env_kwargs, pieces=pieces, synth=synth, split=split, trust=trust)
    rows: dict[str, dict[int, dict]] = {who: {} for who in specs}
    if workers <= 1 and ray_address is None:
        for who, spec in specs.items():
            with tqdm(total=len(indexed), desc=names[who], disable=not progress) as bar:
                rows[who].update(_run_chunk(dict(base, agent=spec, episodes=indexed),
                                            on_episode=lambda b=bar: b.update(1)))
    else:
        if ray_address is not None:  # a few chunks per CPU of the cluster: balanced, each builds its env once
            cpus = int(connect_ray(ray_address).cluster_resources().get("CPU", 1))
            n_chunks = min(len(indexed), 4 * max(cpus, 1))
        else:
            n_chunks = min(len(indexed), workers)
        tasks, owners = [], []
        for who, spec in specs.items():
            for w in range(n_chunks):
                tasks.append(dict(base, agent=spec, episodes=indexed[w::n_chunks], one_thread=True))
                owners.append(who)
        desc = " + ".join(names[who] for who in specs)
        with tqdm(total=len(indexed) * len(specs), desc=desc, disable=not progress) as bar:
            results = run_tasks(_run_chunk, tasks, workers=workers, ray_address=ray_address,
                                on_result=lambda done: bar.update(len(done)))
        for who, chunk_rows in zip(owners, results, strict=True):
            rows[who].update(chunk_rows)
    return {who: [rows[who][i] for i in range(len(indexed))] for who in specs}


def plain(value):
    """``value`` as plain JSON data: numpy scalars and arrays as Python numbers and lists, NaN and infinities as
    None (strict JSON has no NaN), tuples as lists. Result files hold only such data."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _column(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def summarise(episodes: list[dict], main_metric: str, metrics: tuple[str, ...]) -> dict:
    """A result's ``aggregate``, ``reference`` and ``normalised_score``, computed from its episodes alone (each
    with ``metrics`` and the ``reference`` agents' main-metric values on the same episode). The evaluator writes
    them and the leaderboard recomputes them, so a file whose summary disagrees with its episodes is refused."""
    a = _column(e["metrics"].get(main_metric) for e in episodes)
    r = _column(e["reference"]["random"] for e in episodes)
    o = _column(e["reference"]["oracle"] for e in episodes)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, reported as null
        rng = np.random.default_rng(0)
        idx = rng.integers(0, a.size, size=(1000, a.size))
        boot = normalised(np.nanmean(a[idx], axis=1), np.nanmean(r[idx], axis=1), np.nanmean(o[idx], axis=1))
        score = {"mean": float(normalised(np.nanmean(a), np.nanmean(r), np.nanmean(o))),
                 "low": float(np.nanquantile(boot, 0.025)), "high": float(np.nanquantile(boot, 0.975))}
        reference = {"random": float(np.nanmean(r)), "oracle": float(np.nanmean(o))}
    aggregate = {m: bootstrap_interval(_column(e["metrics"].get(m) for e in episodes)) for m in metrics}
    return plain({"aggregate": aggregate, "reference": reference, "normalised_score": score})


def result_digest(result: dict) -> str:
    """SHA-256 of a result's content (everything but the digest), as the evaluator wrote it."""
    import hashlib
    import json

    body = {k: v for k, v in result.items() if k != "digest"}
    return hashlib.sha256(json.dumps(plain(body), sort_keys=True, allow_nan=False).encode()).hexdigest()


def check_evaluation(env_id: str, agent, agent_name: str | None, track: str, limit, workers,
                     env_kwargs: dict | None, ray_address: str | None = None, subset: str = "spread") -> None:
    """Refuse, before anything runs, what would make a wrong or misleading result (one :class:`ConfigError`)."""
    from lmm_envs.benchmark.protocol import check_subset, check_track, get_protocol
    from lmm_envs.envs.options import check_env_options

    proto = get_protocol(env_id)
    check_track(track)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ConfigError(f"limit must be a positive number of pieces (0 or None for all), got {limit!r}")
    check_subset(subset)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if (workers > 1 or ray_address is not None) and not isinstance(agent, str):
        raise ConfigError("workers > 1 and Ray need the agent as a name or a checkpoint path (it is rebuilt in each "
                          "worker); pass its name or save it with model.save()")
    if ray_address is not None:
        from lmm_envs.parallel import require_ray

        require_ray()
    name = agent_name if agent_name is not None else (agent if isinstance(agent, str) else None)
    if name is not None and (not isinstance(name, str) or not name.strip() or not name.isprintable()):
        raise ConfigError(f"the agent's name must be one printable line, got {name!r:.80}")
    for key in env_kwargs or {}:
        if key in PROTOCOL_OPTIONS:
            raise ConfigError(f"env option {key} is set by the evaluation, not as an env option; "
                              f"use {PROTOCOL_OPTIONS[key]}")
    check_env_options(env_id, {**proto.env_kwargs, **(env_kwargs or {})})
    if env_kwargs and "expressiveness" in env_kwargs:  # it replaces the protocol's levels: checked here, first
        from lmm_envs.music.expressive import check_expressiveness

        check_expressiveness(env_kwargs["expressiveness"])


def evaluate(env_id: str, agent, agent_name: str | None = None, track: str = "baseline", pieces=None,
             limit: int | None = None, synth: str = "harmonic", workers: int = 1, trust: bool = False,
             progress: bool = True, learning_curve: list | None = None, env_kwargs: dict | None = None,
             nominal_tempo: str | None = None, ray_address: str | None = None, subset: str = "spread") -> dict:
    """Evaluate ``agent`` (a baseline name, an SB3 ``.zip`` path, an agent object or a plain function) under the
    protocol of ``env_id``; returns the result (see DESIGN section 6), ready for :func:`write_result`.

    The random agent and the oracle are run on the same episodes, so the normalised score is measured in the
    same run; each episode keeps their main-metric values (``reference``) so that the summary can be recomputed
    from the episodes. ``pieces`` (a piece list CSV or list) evaluates a user's own pieces: the result is then
    marked as outside the leaderboard tracks, as it is with ``limit`` (that many pieces, spread over the list or
    the first ones: ``subset``, see :func:`lmm_envs.benchmark.protocol.subset_indices`), ``env_kwargs`` (options beyond the
    protocol's) or a synth other than the protocol's. ``workers`` > 1 runs episodes in parallel processes,
    ``ray_address`` as Ray tasks (``"local"``, ``"auto"`` or a cluster's address; see :mod:`lmm_envs.parallel`):
    the same numbers either way. Bad arguments are refused before any episode runs.
    """
    import lmm_envs
    from lmm_envs.benchmark.protocol import CUSTOM_TRACK, get_protocol
    from lmm_envs.music.corpus import manifest_hash

    limit = limit or None
    check_evaluation(env_id, agent, agent_name, track, limit, workers, env_kwargs, ray_address, subset)
    proto = get_protocol(env_id)
    if pieces is not None and not isinstance(pieces, (str, list, tuple)):
        pieces = str(pieces)
    named = pieces
    if nominal_tempo is not None:
        pieces = _with_nominal_tempo(pieces, nominal_tempo)
    kwargs = {**proto.env_kwargs, **(env_kwargs or {})}
    episodes = protocol_episodes(env_id, pieces, limit, synth, env_kwargs, subset)
    if not episodes:
        raise ConfigError(f"this selection gives {env_id} no episode to evaluate; choose other pieces")
    on_leaderboard = pieces is None and not limit and synth == "harmonic" and not env_kwargs
    name = agent_name or (agent if isinstance(agent, str) else getattr(agent, "__name__", type(agent).__name__))
    specs = {"agent": agent, **{who: who for who in ("random", "oracle") if not (isinstance(agent, str) and agent == who)}}
    runs = _run_all(env_id, specs, episodes, kwargs, pieces, synth, proto.split, workers, trust, progress,
                    {"agent": name, "random": "random", "oracle": "oracle"}, ray_address)
    for who in ("random", "oracle"):
        runs.setdefault(who, runs["agent"])  # the agent is that reference itself
    main = proto.main_metric
    rows = []
    for episode, row, random_row, oracle_row in zip(episodes, runs["agent"], runs["random"], runs["oracle"],
                                                     strict=True):
        rows.append(plain({
            "piece_id": row["piece_id"], "piece_index": episode["piece_index"], "variant": row["variant"],
            "expressiveness": row["expressiveness"], "return": row["return"], "steps": row["steps"],
            "metrics": row["metrics"],
            "reference": {"random": random_row["metrics"].get(main), "oracle": oracle_row["metrics"].get(main)},
        }))
    agent_info = {"name": name, "kind": _agent_kind(agent)}
    if isinstance(agent, str):
        agent_info["spec"] = agent  # what re-runs it: a registered name or the checkpoint's path
    if isinstance(agent, str) and agent.endswith(".zip"):
        from lmm_envs.benchmark.checkpoints import checkpoint_digest

        agent_info["checkpoint_sha256"] = checkpoint_digest(agent)
    result = {
        "format": RESULT_FORMAT,
        "env_id": env_id,
        "env_version": env_id.rsplit("-", 1)[-1],
        "protocol": proto.describe(),
        "lmm_envs_version": lmm_envs.__version__,
        "data_hash": manifest_hash(),
        "track": track if on_leaderboard else CUSTOM_TRACK,
        "on_leaderboard": on_leaderboard,
        "agent": agent_info,
        "settings": {"synth": synth, "pieces": None if named is None else str(named), "limit": limit,
                     **({"subset": subset} if limit else {}), "env_kwargs": kwargs, **({"nominal_tempo": nominal_tempo} if nominal_tempo else {})},
        "main_metric": main,
        "episodes": rows,
        **summarise(rows, main, proto.metrics),
    }
    if learning_curve:
        result["learning_curve"] = [[float(x), float(y)] for x, y in learning_curve]
    result = plain(result)
    result["digest"] = result_digest(result)
    return result


def _with_nominal_tempo(pieces, nominal_tempo: str) -> list:
    """A user's pieces (piece list, dataset folder or list of dicts) with ``nominal_tempo`` set on each."""
    from lmm_envs.pieces import load_piece_list

    if pieces is None:
        raise ConfigError("nominal_tempo applies to your own pieces; give --pieces (a piece list or dataset folder)")
    if isinstance(pieces, str):
        return load_piece_list(pieces, nominal_tempo=nominal_tempo)
    return [dict(p, nominal_tempo=nominal_tempo) if isinstance(p, dict) else p for p in pieces]


def _agent_kind(agent) -> str:
    if isinstance(agent, str):
        return "sb3" if agent.endswith(".zip") else "registered"
    return "python"


def write_result(result: dict, path) -> None:
    """Write a result file atomically (nothing half-written on failure)."""
    import json
    from pathlib import Path

    from lmm_envs.files import atomic_path

    with atomic_path(Path(path)) as tmp, tmp.open("w") as f:
        json.dump(plain(result), f, indent=1, sort_keys=True, allow_nan=False)
