"""The spool directory's bookkeeping files and the syncs that make them survive a crash or power cut.

``lock`` is flocked for the lifetime of a :class:`~producers.spool.Spool` and holds its pid, so a second
process gets an error naming the owner; ``checkpoint`` holds JSON ``{"segment", "offset"}``, the end of
the last acknowledged record, and is replaced atomically.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from pathlib import Path

from abstream.errors import SpoolError, SpoolLockedError
from producers._spool_format import SpoolPosition

__all__ = ["datasync", "fsync_dir", "load_checkpoint", "save_checkpoint", "take_lock"]

_log = logging.getLogger("producers.spool")

datasync = getattr(os, "fdatasync", os.fsync)
"""Sync a file's data (not its metadata, where the platform allows); the spool's per-batch sync."""


def take_lock(directory: Path) -> int:
    """Create ``directory`` if needed and lock it for this process, recording our pid for the next opener."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable by this user")
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SpoolError(
            f"spool directory {directory} is not usable: {exc.strerror or exc}; point the spool at a "
            "writable directory on a local disk",
            directory=str(directory),
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise SpoolLockedError(
            f"spool directory {directory} is locked by process {pid or 'unknown'}; each process needs its "
            "own spool directory",
            directory=str(directory),
            pid=pid,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def load_checkpoint(directory: Path) -> SpoolPosition | None:
    """The last acknowledged position, or None (none yet, or unreadable: replay from the oldest segment)."""
    path = directory / "checkpoint"
    try:
        data = json.loads(path.read_bytes())
        return SpoolPosition(int(data["segment"]), int(data["offset"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("spool %s: unreadable checkpoint %s (%s); replaying from the oldest segment", directory, path, exc)
        return None


def save_checkpoint(directory: Path, position: SpoolPosition) -> None:
    """Replace the checkpoint so that a crash or power cut leaves either the old or the new one."""
    tmp = directory / "checkpoint.tmp"
    with tmp.open("wb") as f:
        f.write(json.dumps(position._asdict()).encode())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(directory / "checkpoint")
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a file creation or rename in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
