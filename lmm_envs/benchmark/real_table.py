"""Tables of agents on real performances: result files of ``lmm-envs evaluate --pieces FOLDER`` side by side.

Each result file is one agent on one dataset with one synth (``settings.pieces``, ``settings.synth``). The first
table has one row per (dataset, synth, agent) with the aggregate metrics, the worst performance and how many
performances stay at or above :data:`FLOOR` within 300 ms; the second breaks ``within_300ms`` down by piece,
where a performance's piece is its id up to the last ``_`` (``Chopin_op38`` for ``Chopin_op38_p01``, the naming
of the Vienna 4x22 corpus and of :mod:`lmm_envs.datasets`' folders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmm_envs.benchmark.leaderboard import _interval, markdown_text

FLOOR = 0.6
METRIC = "within_300ms"


def piece_of(performance_id: str) -> str:
    return performance_id.rsplit("_", 1)[0] if "_" in performance_id else performance_id


def _rows(results: list[dict]) -> list[tuple[str, str, str, dict]]:
    keyed = [(Path(str(r["settings"].get("pieces") or "?")).name, str(r["settings"].get("synth")),
              r["agent"]["name"], r) for r in results]
    return sorted(keyed, key=lambda k: (k[0], k[1], -k[3]["aggregate"][METRIC]["mean"]))


def real_performance_markdown(results: list[dict]) -> str:
    """The two tables of the module docstring, as Markdown."""
    if not results:
        return ""
    lines = ["## Real performances", "",
             f"Agents on whole datasets of human performances (`lmm-envs evaluate --pieces FOLDER`), every episode run "
             f"to the performance's end. `{METRIC}`: share of the score's onsets the agent reports within 300 ms.", "",
             f"| dataset | synth | agent | {METRIC} | within_100ms | lost_share | worst | >= {FLOOR} | episodes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset, synth, agent, r in _rows(results):
        values = np.array([e["metrics"][METRIC] for e in r["episodes"]], dtype=np.float64)
        agg = r["aggregate"]
        lines.append(f"| {markdown_text(dataset)} | {synth} | {markdown_text(agent)} | {_interval(agg[METRIC])} | "
                     f"{_interval(agg.get('within_100ms', {}))} | {_interval(agg.get('lost_share', {}))} | "
                     f"{np.nanmin(values):.3f} | {int(np.sum(values >= FLOOR))}/{values.size} | {values.size} |")
    pieces = sorted({piece_of(e["piece_id"]) for r in results for e in r["episodes"]})
    lines += ["", f"`{METRIC}` by piece (mean over its performances):", "",
              "| dataset | synth | agent | " + " | ".join(markdown_text(p) for p in pieces) + " |",
              "|---|---|---|" + "---:|" * len(pieces)]
    for dataset, synth, agent, r in _rows(results):
        cells = []
        for p in pieces:
            values = [e["metrics"][METRIC] for e in r["episodes"] if piece_of(e["piece_id"]) == p]
            cells.append(f"{np.mean(values):.3f}" if values else "")
        lines.append(f"| {markdown_text(dataset)} | {synth} | {markdown_text(agent)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def real_performance_html(results: list[dict]) -> str:
    """The same tables as HTML (for ``lmm-envs leaderboard --html``)."""
    import html

    out = []
    rows: list[str] = []
    for line in real_performance_markdown(results).splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if rows:
            out.append("<table>" + "".join(rows) + "</table>")
            rows = []
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if rows:
        out.append("<table>" + "".join(rows) + "</table>")
    return "\n".join(out)
