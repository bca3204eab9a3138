"""Content-addressed on-disk cache of numpy arrays, written atomically and checked on every read.

An entry is one file ``<root>/<key[-2:]>/<key>.lmmc``: a magic line, the SHA-256 of the payload, then the payload:
a JSON header (each array's name, dtype, shape and offset) and the arrays' raw bytes. Reading one is a digest and
a few zero-copy views (read-only: a prepared piece is shared by every env that draws it), about ten times faster
than the ``.npz`` payload of format 1, so a reset that reads its piece from disk stays cheap. Keys hash a kind, the content it derives from, the parameters and
:data:`FORMAT_VERSION`. Writers write a private temporary file and rename it into place, so concurrent writers
of the same key leave one valid entry and readers never see a partial one. A truncated, zero-byte or corrupt entry
is detected by its digest, deleted and rebuilt. If the directory cannot be written (read-only, disk full) the
cache warns once and keeps entries in memory instead.

The root is ``$LMM_ENVS_CACHE`` if set, else ``$XDG_CACHE_HOME/lmm_envs``, else ``~/.cache/lmm_envs``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMAT_VERSION = 2
MAGIC = b"LMMCACHE2\n"
DIGEST_SIZE = 32
ALIGN = 64  # array data starts at multiples of this many bytes


def default_cache_dir() -> Path:
    env = os.environ.get("LMM_ENVS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lmm_envs"


def make_key(kind: str, **parts) -> str:
    """A stable key from a kind and JSON-serialisable parts."""
    blob = json.dumps({"format": FORMAT_VERSION, "kind": kind, **parts}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:40]}"


def encode(arrays: dict[str, np.ndarray]) -> bytes:
    table, chunks, offset = [], [], 0
    for name, value in arrays.items():
        array = np.asarray(value)  # tobytes() writes C order whatever the layout
        if array.dtype.hasobject:
            raise TypeError(f"cache entry {name!r}: object arrays cannot be cached")
        table.append([name, array.dtype.str, list(array.shape), offset])
        data = array.tobytes()
        pad = -len(data) % ALIGN
        chunks.append(data + b"\0" * pad)
        offset += len(data) + pad
    header = json.dumps(table).encode()
    header += b" " * (-(8 + len(header)) % ALIGN)
    payload = len(header).to_bytes(8, "little") + header + b"".join(chunks)
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode(blob: bytes) -> dict[str, np.ndarray] | None:
    """The arrays in ``blob`` (read-only views into it), or None if it is truncated or corrupt."""
    head = len(MAGIC) + DIGEST_SIZE
    if len(blob) <= head + 8 or not blob.startswith(MAGIC):
        return None
    payload = memoryview(blob)[head:]
    if hashlib.sha256(payload).digest() != blob[len(MAGIC):head]:
        return None
    try:
        size = int.from_bytes(payload[:8], "little")
        table = json.loads(bytes(payload[8:8 + size]))
        start = 8 + size
        out = {}
        for name, dtype, shape, offset in table:
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            out[name] = np.frombuffer(payload, dtype=dt, count=count, offset=start + offset).reshape(shape)
        return out
    except (ValueError, TypeError, KeyError):
        return None


def _write(fd: int, blob: bytes) -> None:
    """Write ``blob`` to the open file ``fd`` and close it. No fsync: an entry cut short by a crash fails its digest
    on the next read and is rebuilt, so waiting for the disk would buy nothing."""
    with os.fdopen(fd, "wb") as f:
        f.write(blob)


class Cache:
    """The on-disk cache. ``get_or_create(key, build)`` is the one call most code needs."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._memory: dict[str, dict[str, np.ndarray]] = {}
        self._disk_ok = True
        self._lock = threading.Lock()
        self.rebuilt = 0  # corrupt entries found and rebuilt (for tests and diagnostics)

    def path(self, key: str) -> Path:
        return self.root / key[-2:] / f"{key}.lmmc"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if key in self._memory:
            return self._memory[key]
        p = self.path(key)
        try:
            blob = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return None
        arrays = decode(blob)
        if arrays is None:
            self._discard(key)
        return arrays

    def _discard(self, key: str) -> None:
        """Drop a corrupt entry (counted in ``rebuilt``), so that it is built again."""
        self.rebuilt += 1
        self._memory.pop(key, None)
        with contextlib.suppress(OSError):
            self.path(key).unlink()

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self._disk_ok:
            p = self.path(key)
            tmp = None
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=p.parent)
                _write(fd, encode(arrays))
                os.replace(tmp, p)
                return
            except OSError as e:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                with self._lock:
                    if self._disk_ok:
                        self._disk_ok = False
                        warnings.warn(
                            f"lmm_envs cache directory {self.root} cannot be written to ({e.strerror or e}); "
                            "keeping prepared pieces in memory. Set LMM_ENVS_CACHE to a writable directory.",
                            RuntimeWarning, stacklevel=3,
                        )
        self._memory[key] = arrays

    def get_or_create(self, key: str, build: Callable[[], dict[str, np.ndarray]],
                      required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """The entry of ``key``, or ``build()`` stored under it. An entry that lacks one of the ``required`` arrays
        (written by another version, or by hand with a valid digest) is treated as corrupt: deleted and rebuilt."""
        arrays = self.get(key)
        if arrays is not None and any(name not in arrays for name in required):
            self._discard(key)
            arrays = None
        if arrays is None:
            arrays = build()
            self.put(key, arrays)
        return arrays


_default: Cache | None = None


def default_cache() -> Cache:
    """The process-wide cache at :func:`default_cache_dir` (re-created if ``LMM_ENVS_CACHE`` changes)."""
    global _default
    if _default is None or _default.root != default_cache_dir():
        _default = Cache()
    return _default
