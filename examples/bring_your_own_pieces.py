"""Bring your own pieces: a folder of MIDI scores, performances of them and alignments, evaluated in one command.

Here we make such a folder from two bundled chorales (a real dataset would have recorded performances): each
score as MIDI, a "performance" MIDI played 15% slower with a held note at the end, and an alignment CSV
(performance_time,score_time) at every beat. Then `lmm-envs evaluate --pieces list.csv` evaluates any agent
on exactly those pieces.

    python examples/bring_your_own_pieces.py
"""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from lmm_envs.music.io import save_alignment_csv
from lmm_envs.music.score import Alignment, Performance
from lmm_envs.pieces import corpus_score

folder = Path("my_dataset")
folder.mkdir(exist_ok=True)
rows = []
for pid in ("bach/bwv66.6", "bach/bwv86.6"):
    score = corpus_score(pid)
    name = pid.split("/")[1]
    nominal = Performance(score.pitch, score.onset_seconds, score.offset_seconds, score.velocity, score.part)
    nominal.to_pretty_midi().write(str(folder / f"{name}.mid"))  # the score, at its nominal tempo
    stretch = lambda t: 1.15 * np.asarray(t)  # noqa: E731  (the performer plays 15% slower)
    performed = Performance(score.pitch, stretch(score.onset_seconds), stretch(score.offset_seconds),
                            score.velocity, score.part)
    performed.to_pretty_midi().write(str(folder / f"{name}_take1.mid"))
    beats = score.tempo.beats_to_seconds(np.arange(0.0, score.end_beat + 1.0))
    save_alignment_csv(Alignment(stretch(beats), beats), folder / f"{name}_take1.csv")
    rows.append({"score": f"{name}.mid", "performance": f"{name}_take1.mid", "alignment": f"{name}_take1.csv"})
with open(folder / "list.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["score", "performance", "alignment"])
    writer.writeheader()
    writer.writerows(rows)

command = [sys.executable, "-m", "lmm_envs.cli", "evaluate", "--env", "lmm/ScoreFollowing-v0", "--agent", "oltw",
           "--pieces", str(folder / "list.csv"), "--quiet", "--out", "oltw_on_my_dataset.json"]
print("$ lmm-envs " + " ".join(command[3:]))
subprocess.run(command, check=True)
