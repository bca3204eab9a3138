"""Writing files so that a reader never sees a partial one and a failure leaves nothing behind."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmm_envs.errors import ConfigError


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """``path`` if a file may be written there: an existing regular file (replaced) or a new name in an existing,
    writable directory. Anything else (a directory, device, FIFO, symbolic link, a missing or unwritable folder)
    is a :class:`ConfigError`, raised before any work starts, so nothing but a regular file is ever replaced."""
    target = Path(path)
    if not str(path) or target.name in ("", ".", ".."):
        raise ConfigError(f"{what} {str(path)!r} names no file; give a file path such as results/agent.json")
    if target.is_symlink():
        raise ConfigError(f"{what} {target} is a symbolic link; give the path of a regular file")
    if target.exists():
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{what} {target} is a directory; give a file path inside it")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{what} {target} is not a regular file (a device, FIFO or socket); give another path")
    parent = target.parent
    if not parent.is_dir():
        what_is = "is not a directory" if parent.exists() else "does not exist"
        raise ConfigError(f"{what} {target}: the folder {parent} {what_is}; create it first (mkdir -p {parent})")
    if not _writable(parent):
        raise ConfigError(f"{what} {target}: the folder {parent} is not writable; choose another path")
    return target


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, since permissions alone do not tell: root, read-only
    mounts, pseudo file systems)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".lmm-probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def check_output_folder(path: str | Path, what: str = "--out") -> Path:
    """``path`` if files may be written into it: an existing writable directory, or a new one whose nearest
    existing ancestor is a writable directory. Refused otherwise, before any work starts."""
    folder = Path(path)
    if folder.is_symlink() and not folder.is_dir():
        raise ConfigError(f"{what} {folder} is a symbolic link to no folder; give a folder path")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what} {folder} exists and is not a folder; give a folder path")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {folder}: {existing} is not a folder; give another path")
    if not _writable(existing):
        raise ConfigError(f"{what} {folder}: {existing} is not writable; choose another path")
    return folder


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed. Only a
    regular file (or nothing) at ``path`` is ever replaced."""
    target = Path(path)
    if target.is_symlink() or (target.exists() and not stat.S_ISREG(target.stat().st_mode)):
        raise ConfigError(f"{target} is not a regular file (a directory, link, device or FIFO); it is not replaced")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a temp file is private; the result gets the usual permissions
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
