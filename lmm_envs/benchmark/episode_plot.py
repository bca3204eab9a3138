"""A figure of one score-following episode: true against estimated score position over time, and the error.

``lmm-envs render --plot episode.png`` draws it for any agent; :func:`follow_episode` records what it needs.
"""

from __future__ import annotations

from pathlib import Path

from lmm_envs.errors import ConfigError

TOLERANCE_S = 0.3  # the band drawn around zero error (the protocol's within_300ms)


def follow_episode(env, agent, seed: int = 0, options: dict | None = None) -> dict:
    """Play one episode (:func:`~lmm_envs.benchmark.evaluate.run_episode`) and take, per frame, the performance
    time, the true score position and the agent's pointer (score seconds) from the env; ``metrics`` are the
    episode's metrics."""
    from lmm_envs.benchmark.evaluate import run_episode
    from lmm_envs.envs.score_following import ScoreFollowingEnv

    follower = env.unwrapped
    if not isinstance(follower, ScoreFollowingEnv):
        raise ConfigError(f"--plot draws a score follower's pointer; {env.spec.id if env.spec else env} has none "
                          f"(use lmm/ScoreFollowing-v0, or --out for a video)")
    row = run_episode(env, agent, seed=seed, options=options)
    piece, n = follower.piece, row["steps"] + 1
    return {"time": piece.frame_times[:n], "truth": piece.score_positions[:n],
            "pointer": follower._trajectory[:n].copy(), "metrics": row["metrics"], "piece": piece.id}


def plot_following(episode: dict, path: str | Path, agent_name: str) -> Path:
    """Write the figure of :func:`follow_episode`'s record as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, truth, pointer = episode["time"], episode["truth"], episode["pointer"]
    error = pointer - truth
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(t, truth, color="black", lw=1.5, label="true score position")
    top.plot(t, pointer, color="tab:red", lw=1.0, label=f"{agent_name}'s pointer")
    top.set_ylabel("score position (s, nominal)")
    top.legend(loc="upper left")
    m = episode["metrics"]
    summary = ", ".join(f"{k} {m[k]:.2f}" for k in ("within_100ms", "within_300ms", "lost_share") if k in m)
    top.set_title(f"{episode['piece']}: {summary}", fontsize=10)
    bottom.axhspan(-TOLERANCE_S, TOLERANCE_S, color="0.9", label=f"±{TOLERANCE_S * 1000:.0f} ms")
    bottom.plot(t, error, color="tab:red", lw=0.8)
    bottom.axhline(0.0, color="black", lw=0.5)
    bottom.set_ylabel("pointer - truth (score s)")
    bottom.set_xlabel("performance time (s)")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
