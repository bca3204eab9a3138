"""Prepare (render, synthesize, analyse and cache) the renderings the envs draw, ahead of training.

An env draws each episode from ``performances_per_piece`` seeded renderings of a piece
(:data:`~lmm_envs.pieces.PERFORMANCES_PER_PIECE` by default); :func:`prepare_pieces` builds exactly those, so that
no reset has to. One task per piece (its score is parsed once for all its renderings), run here, in local worker
processes, or as Ray tasks (see :mod:`lmm_envs.parallel`) writing to one cache directory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmm_envs.music.expressive import DEFAULT_STYLE
from lmm_envs.parallel import environment, run_tasks
from lmm_envs.pieces import PERFORMANCES_PER_PIECE


@dataclass(frozen=True)
class PrepareReport:
    """What :func:`prepare_pieces` did: renderings found and built, seconds of audio they hold, wall time."""

    pieces: int
    renderings: int
    built: int
    audio_seconds: float
    wall_seconds: float

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio prepared per second of wall time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    def line(self) -> str:
        return (f"prepared {self.renderings} renderings of {self.pieces} pieces ({self.built} built, "
                f"{self.renderings - self.built} already cached): {self.audio_seconds / 3600:.1f} h of audio in "
                f"{self.wall_seconds:.0f} s ({self.realtime_factor:.0f}x real time)")


def _prepare_one(task: dict) -> tuple[int, float]:
    """Prepare every rendering of one piece (in any process): returns (renderings built, seconds of audio)."""
    from lmm_envs.audio.features import FPS
    from lmm_envs.pieces import performance_seed, prepare_piece, renderings_built

    before = renderings_built()
    seconds = 0.0
    root = task.get("cache_root")  # a Ray node writes where the driver said
    with environment(LMM_ENVS_CACHE=root) if root else contextlib.nullcontext():
        for variant in range(task["variants"]):
            piece = prepare_piece(task["id"], task["expressiveness"], performance_seed(task["id"], variant),
                                  task["synth"], style=task["style"])
            seconds += piece.spectrogram.shape[1] / FPS
            if task.get("playing_targets"):
                _prepare_playing_targets(piece, task["synth"])
    return renderings_built() - before, seconds


def _prepare_playing_targets(piece, synth: str) -> None:
    """What the playing envs read at a reset, as they draw it by default: the SightReading / PlayByEar targets
    (velocity off; the polyphonic one, and the monophonic one for a monophonic piece, the pieces
    ``polyphony="mono"`` uses) and, for a piece of two or more parts, the soloist's part that Accompaniment hears
    (``solo_part="top"``)."""
    from lmm_envs.audio.synth import make_synth
    from lmm_envs.envs.accompaniment import solo_part_index
    from lmm_envs.envs.sight_reading import playing_target
    from lmm_envs.music import corpus
    from lmm_envs.pieces import part_spectrogram

    synth_obj = make_synth(synth)
    info = corpus.piece_info(piece.id)
    for mono in (False, True) if info.monophonic else (False,):
        playing_target(piece, mono, False, synth_obj)
    if info.n_parts >= 2:  # the pieces Accompaniment draws
        part_spectrogram(piece, [solo_part_index(piece.score, "top")], synth_obj)


def prepare_pieces(ids: Sequence[str], variants: int = PERFORMANCES_PER_PIECE, expressiveness: float = 1.0,
                   synth: str = "harmonic", style: str = DEFAULT_STYLE, workers: int = 1,
                   ray_address: str | None = None, cache_root: str | Path | None = None,
                   progress: bool = True, playing_targets: bool = False) -> PrepareReport:
    """Prepare renderings ``0..variants-1`` of each bundled piece in ``ids`` with the envs' seeds, so that envs with
    the same options (``expressiveness``, ``synth``, ``expressive_style``) find them cached.

    ``workers`` > 1 uses local processes; ``ray_address`` runs one Ray task per piece instead (then
    ``cache_root``, default ``$LMM_ENVS_CACHE``, must be a directory every node can write, or each node keeps its
    own). Already cached renderings are only checked. ``playing_targets`` also prepares what the playing envs read
    at a reset: what SightReading and PlayByEar play each rendering against (their target's sound through the
    keyboard, about 10 ms a rendering) and the soloist's part Accompaniment hears (a piece of two or more parts).
    """
    from tqdm import tqdm

    from lmm_envs.audio.cache import default_cache_dir
    from lmm_envs.audio.synth import make_synth
    from lmm_envs.music import corpus
    from lmm_envs.music.expressive import check_expressiveness, check_style

    for pid in ids:
        corpus.piece_info(pid)  # an unknown id: one line, before any work
    check_expressiveness(expressiveness)
    check_style(style)
    make_synth(synth)  # a missing FluidSynth: one line, before any work
    root = str(cache_root) if cache_root is not None else (str(default_cache_dir()) if ray_address else None)
    tasks = [dict(id=pid, variants=int(variants), expressiveness=float(expressiveness), synth=synth, style=style,
                  cache_root=root, playing_targets=bool(playing_targets)) for pid in ids]
    start = time.perf_counter()
    with tqdm(total=len(tasks) * variants, desc="preparing", unit="rendering", disable=not progress) as bar:
        results = run_tasks(_prepare_one, tasks, workers=workers, ray_address=ray_address,
                            on_result=lambda _: bar.update(variants))
    return PrepareReport(pieces=len(ids), renderings=len(ids) * variants, built=sum(b for b, _ in results),
                         audio_seconds=sum(s for _, s in results), wall_seconds=time.perf_counter() - start)
