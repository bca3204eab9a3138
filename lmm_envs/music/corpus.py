"""The bundled corpus: real scores shipped inside music21, with stable ids, splits and LMM pools.

Piece ids are ``bach/<bwv>`` (the Bach chorales) and ``ryans/<tune>`` (Ryan's Mammoth Collection of fiddle
tunes). Splits (``train``/``val``/``test``) and, within ``train``, the three LMM pools (``unpaired_score``,
``unpaired_audio``, ``paired``) are assigned from a hash of the id and recorded in ``manifest.json`` beside this
module, so they never drift. ``python -m lmm_envs.music.corpus --build`` rebuilds the manifest (maintainers only).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from lmm_envs.errors import ConfigError, UnknownPieceError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")
POOLS = ("unpaired_score", "unpaired_audio", "paired")
COLLECTIONS = {  # id prefix -> (music21 corpus folder, file suffixes)
    "bach": ("bach", (".mxl", ".xml")),
    "ryans": ("ryansMammoth", (".abc",)),
}
MIN_SECONDS, MAX_SECONDS = 8.0, 240.0


@dataclass(frozen=True)
class PieceInfo:
    """One manifest row: where a piece comes from and where it belongs."""

    id: str
    source: str  # path inside music21's corpus folder
    sha256: str
    split: str
    pool: str | None
    n_notes: int
    n_parts: int
    seconds: float  # nominal duration
    lowest: int
    highest: int
    monophonic: bool


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def assign_split(piece_id: str) -> str:
    u = _unit("split:" + piece_id)
    return "train" if u < 0.8 else "val" if u < 0.9 else "test"


def assign_pool(piece_id: str) -> str:
    u = _unit("pool:" + piece_id)
    return "unpaired_score" if u < 0.4 else "unpaired_audio" if u < 0.8 else "paired"


def music21_corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """The shipped manifest: ``{"version", "hash", "pieces": [...]}``."""
    data = json.loads(MANIFEST_PATH.read_text())
    return data


@functools.lru_cache(maxsize=1)
def _by_id() -> dict[str, PieceInfo]:
    return {row["id"]: PieceInfo(**row) for row in manifest()["pieces"]}


def manifest_hash() -> str:
    """Digest of the manifest's pieces: result files carry it so that data changes are detected."""
    return manifest()["hash"]


def piece_ids(split: str | None = None, pool: str | None = None, collection: str | None = None) -> list[str]:
    """Ids of the bundled pieces, optionally filtered by split, pool and collection; sorted."""
    if split is not None and split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if pool is not None and pool not in POOLS:
        raise ConfigError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
    if collection is not None and collection not in COLLECTIONS:
        raise ConfigError(f"unknown collection {collection!r}; choose one of {', '.join(COLLECTIONS)}")
    return sorted(
        pid for pid, info in _by_id().items()
        if (split is None or info.split == split)
        and (pool is None or info.pool == pool)
        and (collection is None or pid.split("/", 1)[0] == collection)
    )


def piece_info(piece_id: str) -> PieceInfo:
    try:
        return _by_id()[piece_id]
    except KeyError:
        close = [p for p in _by_id() if piece_id.split("/")[-1] in p][:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownPieceError(
            f"unknown piece id {piece_id!r}{hint}; list the bundled ids with `lmm-envs data list`"
        ) from None


def paired_ids(budget: int | None = None) -> list[str]:
    """The paired pool in its fixed budget order: ``paired_ids(K)`` is exactly the first K paired pieces."""
    ids = sorted(piece_ids(split="train", pool="paired"), key=lambda p: hashlib.sha256(("budget:" + p).encode()).hexdigest())
    if budget is None:
        return ids
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ConfigError(f"paired_budget must be a positive integer, got {budget!r}")
    if budget > len(ids):
        raise ConfigError(f"paired_budget={budget} exceeds the paired pool's {len(ids)} pieces; use at most {len(ids)}")
    return ids[:budget]


def source_path(piece_id: str) -> Path:
    return music21_corpus_root() / piece_info(piece_id).source


def load_corpus_score(piece_id: str):
    """Parse a bundled piece into a :class:`~lmm_envs.music.score.Score` (use the cached loader in pieces)."""
    from lmm_envs.music.io import load_score

    score = load_score(source_path(piece_id))
    return replace(score, title=piece_id)


# --- maintainers: building the manifest ------------------------------------------------------------------
def build_manifest(progress: bool = True) -> dict:
    """Scan music21's corpus and describe every usable piece (parses each; a few minutes)."""
    from tqdm import tqdm

    from lmm_envs.errors import LMMError
    from lmm_envs.music.io import load_score

    root = music21_corpus_root()
    files = []
    for prefix, (folder, suffixes) in COLLECTIONS.items():
        for f in sorted((root / folder).iterdir()):
            if f.suffix.lower() in suffixes and not f.name.startswith("."):
                files.append((f"{prefix}/{f.stem}", f))
    rows = []
    for pid, f in tqdm(files, desc="scanning corpus", disable=not progress):
        try:
            score = load_score(f)
        except LMMError:
            continue
        seconds = score.end_seconds
        if not (MIN_SECONDS <= seconds <= MAX_SECONDS):
            continue
        onsets_mono = bool(score.n_parts == 1 and len(set(score.onset.tolist())) == score.n_notes)
        split = assign_split(pid)
        rows.append(dict(
            id=pid, source=str(f.relative_to(root)), sha256=hashlib.sha256(f.read_bytes()).hexdigest(),
            split=split, pool=assign_pool(pid) if split == "train" else None,
            n_notes=score.n_notes, n_parts=score.n_parts, seconds=round(seconds, 3),
            lowest=int(score.pitch.min()), highest=int(score.pitch.max()), monophonic=onsets_mono,
        ))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return {"version": MANIFEST_VERSION, "hash": digest, "pieces": rows}


def _main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Rebuild lmm_envs/music/manifest.json from music21's corpus.")
    ap.add_argument("--build", action="store_true", required=True)
    ap.parse_args()
    data = build_manifest()
    MANIFEST_PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(data['pieces'])} pieces to {MANIFEST_PATH}")


if __name__ == "__main__":
    _main()
