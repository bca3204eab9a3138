"""Result files -> leaderboard tables (Markdown) and a page with plots (HTML with inline SVG).

A result file is refused, with a message naming it and saying why, when it is not valid JSON, lacks a field or
has one of the wrong type, was written for another format, env version, protocol or data manifest, no longer
matches the digest the evaluator wrote into it, or when its summary (aggregates, references, normalised score) is
not what its episodes give, or an on-track result does not hold exactly the protocol's episodes.

The digest detects accidents (a hand-edited number, a truncated copy), not forgery: anyone can recompute it.
What stops a forged number is the recomputation from the episodes; what stops forged episodes is re-running
them: :func:`verify_result` (``lmm-envs leaderboard --verify``) replays a sample of a result's episodes from its
baseline name or checkpoint and marks the row verified only when they come out the same.
"""

from __future__ import annotations

import functools
import html
import json
import numbers
from pathlib import Path

import numpy as np

from lmm_envs.benchmark.evaluate import RESULT_FORMAT, plain, result_digest, summarise
from lmm_envs.benchmark.protocol import BASELINE_TRACK, CUSTOM_TRACK, TRACKS, within
from lmm_envs.errors import LMMError

REQUIRED = ("format", "env_id", "env_version", "protocol", "lmm_envs_version", "data_hash", "track", "agent",
            "main_metric", "episodes", "aggregate", "reference", "normalised_score", "digest")


class ResultFileError(LMMError):
    """A result file the leaderboard cannot accept."""


def _is_number(value) -> bool:
    return value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool))


def _shape_error(result: dict) -> str | None:
    """What is of the wrong type in a result (a field path and what it should be), or None."""
    expect = {"format": int, "env_id": str, "env_version": str, "protocol": dict, "lmm_envs_version": str,
              "data_hash": str, "track": str, "agent": dict, "main_metric": str, "episodes": list,
              "aggregate": dict, "reference": dict, "normalised_score": dict, "digest": str,
              "settings": dict, "on_leaderboard": bool}
    for key, kind in expect.items():
        if key in result and not isinstance(result[key], kind):
            return f"{key} should be {kind.__name__}"
    agent = result["agent"]
    if not isinstance(agent.get("name"), str) or not isinstance(agent.get("kind"), str):
        return "agent should have a name and a kind (strings)"
    if not result["episodes"]:
        return "episodes is empty (a result needs at least one episode)"
    for i, e in enumerate(result["episodes"]):
        if not isinstance(e, dict) or not isinstance(e.get("metrics"), dict) or not isinstance(e.get("reference"), dict):
            return f"episodes[{i}] should be an object with metrics and reference objects"
        if not all(_is_number(v) for v in e["metrics"].values()):
            return f"episodes[{i}].metrics should hold numbers"
        if not all(_is_number(e["reference"].get(k, "missing")) for k in ("random", "oracle")):
            return f"episodes[{i}].reference should hold the random and oracle numbers"
        if not isinstance(e.get("piece_index"), int) or not isinstance(e.get("variant"), int) \
                or not _is_number(e.get("expressiveness", "missing")):
            return f"episodes[{i}] should name its piece_index, variant and expressiveness"
    return None


@functools.cache
def _protocol_episode_keys(env_id: str) -> list[tuple]:
    from lmm_envs.benchmark.evaluate import protocol_episodes

    return [(e["piece_index"], e["variant"], e["expressiveness"]) for e in protocol_episodes(env_id)]


def load_result(path: str | Path) -> dict:
    """Read and check one result file (see the module docstring for what is refused)."""
    from lmm_envs.benchmark.protocol import get_protocol
    from lmm_envs.envs import ENV_IDS
    from lmm_envs.music.corpus import manifest_hash

    path = Path(path)
    if not path.is_file():  # a FIFO or device named *.json would block or never end
        raise ResultFileError(f"{path}: not a regular file")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ResultFileError(f"{path}: cannot read it ({e})") from None
    except json.JSONDecodeError as e:
        raise ResultFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); re-run lmm-envs evaluate") \
            from None
    except RecursionError:
        raise ResultFileError(f"{path}: not a result file (JSON nested too deeply)") from None
    if not isinstance(result, dict):
        raise ResultFileError(f"{path}: not a result file (a JSON object is expected)")
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise ResultFileError(f"{path}: not a result file, missing {', '.join(missing)}")
    if result["format"] != RESULT_FORMAT:
        raise ResultFileError(f"{path}: result format {str(result['format'])[:20]}, this version reads "
                              f"{RESULT_FORMAT}; re-evaluate the agent")
    if result["env_id"] not in ENV_IDS:
        raise ResultFileError(f"{path}: env {str(result['env_id'])[:80]!r} is not registered here "
                              "(env version mismatch?)")
    if result["env_version"] != result["env_id"].rsplit("-", 1)[-1]:
        raise ResultFileError(f"{path}: env version {str(result['env_version'])[:20]!r} does not match "
                              f"{result['env_id']}")
    current = get_protocol(result["env_id"]).version
    if not isinstance(result["protocol"], dict) or result["protocol"].get("version") != current:
        version = result["protocol"].get("version") if isinstance(result["protocol"], dict) else None
        raise ResultFileError(f"{path}: written under protocol version {str(version)[:20]} of {result['env_id']}, "
                              f"this version uses {current}; re-evaluate the agent")
    if result["data_hash"] != manifest_hash():
        raise ResultFileError(f"{path}: data hash {str(result['data_hash'])[:12]}... does not match this corpus "
                              f"manifest ({manifest_hash()[:12]}...); re-evaluate the agent on this data")
    if not isinstance(result["digest"], str) or result_digest(result) != result["digest"]:
        raise ResultFileError(f"{path}: content does not match its digest (edited by hand?); re-run lmm-envs evaluate")
    problem = _shape_error(result)
    if problem:
        raise ResultFileError(f"{path}: not a result file of this version ({problem}); re-run lmm-envs evaluate")
    proto = get_protocol(result["env_id"])
    if plain(result["protocol"]) != plain(proto.describe()) or result["main_metric"] != proto.main_metric:
        raise ResultFileError(f"{path}: its protocol (metrics, settings) is not {result['env_id']}'s; "
                              "re-evaluate the agent")
    if result["track"] not in (*TRACKS, BASELINE_TRACK, CUSTOM_TRACK) \
            or result.get("on_leaderboard") != (result["track"] != CUSTOM_TRACK):
        raise ResultFileError(f"{path}: track {str(result['track'])[:20]!r} is not a track of this leaderboard")
    expected = summarise(result["episodes"], proto.main_metric, proto.metrics)
    for key, value in expected.items():
        if plain(result[key]) != value:
            raise ResultFileError(f"{path}: its {key} is not what its episodes give; the file was altered or "
                                  "written by another evaluator, re-run lmm-envs evaluate")
    if result["track"] != CUSTOM_TRACK:
        keys = [(e["piece_index"], e["variant"], e["expressiveness"]) for e in result["episodes"]]
        protocol_keys = _protocol_episode_keys(result["env_id"])
        if keys != protocol_keys:
            raise ResultFileError(f"{path}: its episodes are not the protocol's {len(protocol_keys)} "
                                  f"(it holds {len(keys)}); results on a track must cover the whole protocol")
    return result


def load_results(folder: str | Path) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultFileError(f"{folder} is not a folder of result files")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ResultFileError(f"no result files (*.json) in {folder}; write some with lmm-envs evaluate --out")
    return [load_result(f) for f in files]


def _checkpoint_for(result: dict, folder: Path) -> Path | None:
    """The checkpoint an SB3 result was evaluated from: at its recorded path, beside the result, or among the
    zips of the results folder and of a ``checkpoints`` folder next to it; only one whose SHA-256 matches."""
    from lmm_envs.benchmark.checkpoints import checkpoint_digest

    spec = Path(str(result["agent"].get("spec", "")))
    nearby = [*sorted(folder.glob("*.zip")), *sorted((folder.parent / "checkpoints").glob("*.zip"))]
    for candidate in (spec, folder / spec, folder / spec.name, *nearby):
        if candidate.suffix == ".zip" and candidate.is_file() \
                and checkpoint_digest(candidate) == result["agent"].get("checkpoint_sha256"):
            return candidate
    return None


def verify_result(result: dict, folder: str | Path, episodes: int = 2) -> str:
    """Re-run a seeded sample of ``episodes`` of a result's episodes from its baseline name or checkpoint;
    returns ``"yes (n/n)"`` when every one gives the recorded metrics, return and steps, else why not."""
    from lmm_envs.benchmark.evaluate import _run_chunk
    from lmm_envs.benchmark.protocol import get_protocol

    agent = result["agent"]
    if agent["kind"] == "registered":
        spec = str(agent.get("spec", ""))
    elif agent["kind"] == "sb3":
        checkpoint = _checkpoint_for(result, Path(folder))
        if checkpoint is None:
            return "no: checkpoint not found"
        spec = str(checkpoint)
    else:
        return "no: a Python agent cannot be re-run"
    settings = result.get("settings") or {}
    proto = get_protocol(result["env_id"])
    kwargs = dict(settings.get("env_kwargs") or proto.env_kwargs)
    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(len(result["episodes"]), size=min(episodes, len(result["episodes"])),
                               replace=False).tolist())
    pieces = settings.get("pieces")
    if pieces is not None and settings.get("nominal_tempo"):
        from lmm_envs.benchmark.evaluate import _with_nominal_tempo

        pieces = _with_nominal_tempo(pieces, settings["nominal_tempo"])
    task = dict(env_id=result["env_id"], env_kwargs=kwargs, pieces=pieces,
                synth=settings.get("synth", "harmonic"), split=proto.split, agent=spec, trust=False,
                episodes=[(i, result["episodes"][i]) for i in chosen])
    try:
        rows = _run_chunk(task)
    except LMMError as e:
        return f"no: {e}"
    # the chunk runner seeds each episode and builds its env exactly as the evaluation did
    same = sum(plain({k: row[k] for k in ("metrics", "return", "steps")})
               == {k: result["episodes"][i][k] for k in ("metrics", "return", "steps")} for i, row in rows)
    return f"yes ({same}/{len(rows)})" if same == len(rows) else f"NO: {len(rows) - same} of {len(rows)} differ"


def _number(value) -> float:
    """A summary number as read from a file (null is NaN: no value)."""
    return float("nan") if value is None else float(value)


def _interval(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    mean, low, high = (_number(stat.get(k)) * scale for k in ("mean", "low", "high"))
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def tables(results: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(env id, track, rows sorted by normalised score) for every env and track with a result. A track's table also
    holds the baselines and the results of tighter tracks (:func:`~lmm_envs.benchmark.protocol.within`): an agent
    trained with 100k steps competes on the 1M track too."""
    out = []
    order = {t: i for i, t in enumerate((*TRACKS, CUSTOM_TRACK))}  # tracks by paired budget, then steps
    for env_id in sorted({r["env_id"] for r in results}):
        mine = [r for r in results if r["env_id"] == env_id]
        baselines = [r for r in mine if r["track"] == BASELINE_TRACK]
        tracks = sorted({r["track"] for r in mine} - {BASELINE_TRACK}, key=lambda t: (order.get(t, len(order)), t))
        for track in [BASELINE_TRACK, *tracks]:
            rows = baselines if track == BASELINE_TRACK else [r for r in mine if r["track"] == track]
            if track not in (BASELINE_TRACK, CUSTOM_TRACK):  # with the agents of tighter tracks, which qualify too
                rows = rows + [r for r in mine if r["track"] != track and within(r["track"], track)] + baselines
            rows = sorted(rows, key=lambda r: -np.nan_to_num(_number(r["normalised_score"]["mean"]), nan=-np.inf))
            if rows:
                out.append((env_id, track, rows))
    return out


def markdown_text(text: str) -> str:
    """``text`` as one Markdown table cell: no line breaks, ``|`` escaped, no HTML (``<``, ``>``, ``&``)."""
    text = " ".join(str(text).split())
    text = html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return "".join(c if c.isprintable() else " " for c in text)


def _origin(result: dict, table_track: str) -> str:
    """What a row's name says when the result stands in another track's table: ``(baseline)``, ``(track 8/100k)``."""
    if result["track"] == table_track:
        return ""
    return " (baseline)" if result["track"] == BASELINE_TRACK else f" (track {result['track']})"


def markdown(results: list[dict]) -> str:
    verified = any("verified" in r for r in results)
    lines = ["# Leaderboard", "",
             "Normalised score: `(agent - random) / (oracle - random)` on the protocol's main metric, with a 95% "
             "bootstrap interval over episodes. Made by `lmm-envs leaderboard`; do not edit by hand.", ""]
    for env_id, track, rows in tables(results):
        main = rows[0]["main_metric"]
        extra = [m for m in rows[0]["protocol"]["metrics"] if m != main][:2]
        title = {BASELINE_TRACK: "baselines (no paired data, no training)",
                 CUSTOM_TRACK: "custom pieces or settings (outside the tracks)"}.get(
            track, f"track {track} (paired budget / env steps)")
        last = " episodes | verified |" if verified else " episodes |"
        lines += [f"## {env_id}: {title}", "",
                  f"| rank | agent | normalised score | {main} | " + " | ".join(extra) + f" |{last}",
                  "|---" * (5 + len(extra) + verified) + "|"]
        for rank, r in enumerate(rows, 1):
            name = markdown_text(r["agent"]["name"]) + _origin(r, track)
            cells = [_interval(r["normalised_score"]), _interval(r["aggregate"][main])]
            cells += [_interval(r["aggregate"].get(m, {})) for m in extra]
            cells.append(str(len(r["episodes"])))
            if verified:
                cells.append(markdown_text(r.get("verified", "not checked")))
            lines.append(f"| {rank} | {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# --- HTML with inline SVG plots -----------------------------------------------------------------------------
def _svg_strip(rows: list[dict], metric: str, width: int = 640) -> str:
    """Per-episode values of ``metric`` for each agent: one row of dots per agent, its mean as a bar."""
    height = 28 * len(rows) + 30
    left, right = 170, width - 20
    values = [np.array([_number(e["metrics"].get(metric)) for e in r["episodes"]], dtype=float) for r in rows]
    finite = np.concatenate([v[np.isfinite(v)] for v in values] + [np.zeros(1)])
    lo, hi = float(finite.min()), float(finite.max())
    hi = hi if hi > lo else lo + 1.0

    def x(v):
        return left + (v - lo) / (hi - lo) * (right - left)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">',
             f'<line x1="{left}" y1="{height - 20}" x2="{right}" y2="{height - 20}" stroke="#888"/>',
             f'<text x="{left}" y="{height - 5}">{lo:.3g}</text>',
             f'<text x="{right}" y="{height - 5}" text-anchor="end">{hi:.3g}</text>',
             f'<text x="{(left + right) / 2}" y="{height - 5}" text-anchor="middle">{html.escape(metric)} per episode'
             '</text>']
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        y = 20 + 28 * i
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{html.escape(r["agent"]["name"])}</text>')
        for value in v[np.isfinite(v)]:
            parts.append(f'<circle cx="{x(value):.1f}" cy="{y}" r="2.5" fill="#3b75af" fill-opacity="0.5"/>')
        if np.isfinite(v).any():
            m = x(float(np.nanmean(v)))
            parts.append(f'<line x1="{m:.1f}" y1="{y - 9}" x2="{m:.1f}" y2="{y + 9}" stroke="#c0392b" '
                         'stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_curves(rows: list[dict], width: int = 640, height: int = 240) -> str | None:
    curves = [(r["agent"]["name"], np.array(r["learning_curve"], dtype=float)) for r in rows
              if r.get("learning_curve")]
    if not curves:
        return None
    xs = np.concatenate([c[:, 0] for _, c in curves])
    ys = np.concatenate([c[:, 1] for _, c in curves])
    x0, x1 = float(xs.min()), float(xs.max()) or 1.0
    y0, y1 = float(ys.min()), float(ys.max())
    y1 = y1 if y1 > y0 else y0 + 1.0
    colours = ["#3b75af", "#c0392b", "#27ae60", "#8e44ad", "#d35400"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">',
             f'<text x="10" y="15">learning curves (return per episode against env steps, {x0:.0f}..{x1:.0f})</text>']
    for k, (name, c) in enumerate(curves):
        pts = " ".join(f"{40 + (a - x0) / max(x1 - x0, 1e-9) * (width - 60):.1f},"
                       f"{height - 20 - (b - y0) / (y1 - y0) * (height - 50):.1f}" for a, b in c)
        colour = colours[k % len(colours)]
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<text x="{width - 10}" y="{30 + 14 * k}" text-anchor="end" fill="{colour}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_page(results: list[dict]) -> str:
    body = ["<!doctype html><html><head><meta charset='utf-8'><title>lmm-envs leaderboard</title>",
            "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:nth-child(2){text-align:left}</style>",
            "</head><body><h1>lmm-envs leaderboard</h1>",
            "<p>Normalised score: (agent - random) / (oracle - random) on the protocol's main metric, with 95% "
            "bootstrap intervals over episodes.</p>"]
    for env_id, track, rows in tables(results):
        main = rows[0]["main_metric"]
        verified = any("verified" in r for r in rows)
        body.append(f"<h2>{html.escape(env_id)}: {html.escape(track)}</h2><table><tr><th>rank</th><th>agent</th>"
                    f"<th>normalised score</th><th>{html.escape(main)}</th><th>episodes</th>"
                    + ("<th>verified</th>" if verified else "") + "</tr>")
        for rank, r in enumerate(rows, 1):
            body.append(f"<tr><td>{rank}</td><td>{html.escape(r['agent']['name'] + _origin(r, track))}</td>"
                        f"<td>{_interval(r['normalised_score'])}</td><td>{_interval(r['aggregate'][main])}</td>"
                        f"<td>{len(r['episodes'])}</td>"
                        + (f"<td>{html.escape(r.get('verified', 'not checked'))}</td>" if verified else "")
                        + "</tr>")
        body.append("</table>")
        body.append(_svg_strip(rows, main))
        curves = _svg_curves(rows)
        if curves:
            body.append(curves)
    body.append("</body></html>")
    return "\n".join(body)


# --- the baselines kept in the repository ------------------------------------------------------------------
CLASSIC_BASELINES = {
    "lmm/ScoreFollowing-v0": ("oltw", "keep_tempo"),
    "lmm/Accompaniment-v0": ("metronome", "follower_accompanist"),
    "lmm/SightReading-v0": (),
    "lmm/PlayByEar-v0": ("transcriber",),
}


def result_filename(env_id: str, agent: str, track: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(agent).stem)
    return f"{env_id.split('/')[-1]}__{safe}__{track.replace('/', '-')}.json"


def rebuild_baselines(folder: str | Path, env_ids: list[str] | None = None, workers: int = 1,
                      progress: bool = True) -> list[Path]:
    """Evaluate random, oracle and the classic baselines of every env under its protocol into ``folder``."""
    from lmm_envs.benchmark.evaluate import evaluate, write_result

    written = []
    for env_id in env_ids or sorted(CLASSIC_BASELINES):
        for agent in ("random", "oracle", *CLASSIC_BASELINES[env_id]):
            result = evaluate(env_id, agent, track=BASELINE_TRACK, workers=workers, progress=progress)
            path = Path(folder) / result_filename(env_id, agent, BASELINE_TRACK)
            write_result(result, path)
            written.append(path)
    return written
