"""A durable, append-only, segmented spool for Kafka messages that could not be produced yet.

The exposure logger must never block the app nor lose a record: when librdkafka's queue is full or a delivery
fails, the encoded message is appended here and replayed, oldest first, once Kafka is back.

Durability: ``append`` hands the record to the kernel (one ``pwrite``) before returning, so a process crash,
even SIGKILL, loses nothing it accepted. The disk is synced in batches (after ``fsync_every`` records or
``fsync_interval_s``, on rotation, ``flush`` and ``close``): a power cut can lose the records appended since
the last sync, never an earlier one. ``ack`` is durable when it returns.

On disk: ``{id:020d}.seg`` segments of CRC-checked frames (:mod:`producers._spool_format`), a ``checkpoint``
with the end of the last acked record and a flocked ``lock`` holding the pid (:mod:`producers._spool_files`).

Replay (the logger's background thread)::

    batch = spool.read(max_records=1000)
    ...produce them, wait for the delivery reports; k = index of the first failure...
    if k: spool.ack(batch[k - 1].position)   # 0..k-1 delivered: durable, never read again
    spool.rewind()                           # after a failure: the next read starts at record k
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path

from abstream.errors import ConfigError, SpoolError, SpoolFullError
from producers._spool_files import datasync as _datasync
from producers._spool_files import fsync_dir, load_checkpoint, save_checkpoint, take_lock
from producers._spool_format import (
    HEADER_SIZE,
    MAGIC,
    Header,
    SpoolPosition,
    SpoolRecord,
    encode_frame,
    read_records,
    scan_segment,
    segment_ids,
    segment_path,
    spool_error,
)

__all__ = ["Header", "Spool", "SpoolPosition", "SpoolRecord"]

_log = logging.getLogger(__name__)


class Spool:
    """A spool directory owned by this process until :meth:`close`.

    ``append`` is safe from any number of threads and costs one ``pwrite`` plus encoding; ``read``/``ack``
    /``rewind`` belong to one consumer (they are serialised, never blocking appenders during I/O).
    ``max_bytes`` counts segment bytes on disk: the oldest segment is only freed once fully acknowledged.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync_every: int = 1000,
        fsync_interval_s: float = 1.0,
    ) -> None:
        _check_options(max_bytes, segment_bytes, fsync_every, fsync_interval_s)
        self._dir = Path(directory)
        self._max_bytes, self._segment_bytes = max_bytes, segment_bytes
        self._fsync_every, self._fsync_interval_s = fsync_every, fsync_interval_s
        self._lock = threading.Lock()  # append state: segments, sizes, counters
        self._read_lock = threading.Lock()  # replay state; taken before ``_lock``, never after
        self._ends: dict[int, int] = {}  # live segment id -> end of its last intact frame, ascending
        self._disk_bytes = self._pending_records = self._discarded_bytes = self._unsynced = 0
        self._synced_at = time.monotonic()
        self._closed = False
        self._active = self._active_fd = -1  # the segment appends go to; set by _recover
        self._inflight: list[SpoolPosition] = []  # read, not yet acknowledged, ascending
        self._lock_fd = take_lock(self._dir)
        try:
            self._acked = self._recover(load_checkpoint(self._dir))
        except OSError as exc:
            os.close(self._lock_fd)
            raise self._error("cannot recover the segments on disk", exc) from exc
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._cursor = self._acked

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def pending_records(self) -> int:
        """Records appended and not yet acknowledged (exact; torn or corrupt frames are not counted)."""
        return self._pending_records

    @property
    def pending_bytes(self) -> int:
        """Unacknowledged bytes on disk, frames plus 8 header bytes per segment."""
        acked = self._acked
        with self._lock:
            return self._disk_bytes - (acked.offset if acked.segment in self._ends else 0)

    @property
    def segments(self) -> int:
        """Segment files on disk."""
        return len(self._ends)

    @property
    def discarded_bytes(self) -> int:
        """Bytes of torn or corrupt frames skipped when this spool was opened (logged as warnings)."""
        return self._discarded_bytes

    def append(self, topic: str, key: bytes | None, value: bytes, headers: Sequence[Header] | None = None) -> None:
        """Store one encoded Kafka message; raises :class:`SpoolFullError` rather than dropping it."""
        frame = encode_frame(topic, key, value, headers)
        with self._lock:
            sync_fd = self._write(frame)
        if sync_fd is not None:
            self._sync(sync_fd)

    def flush(self) -> None:
        """Make every record appended so far survive a power cut."""
        with self._lock:
            sync_fd = self._claim_sync()
        self._sync(sync_fd)

    def sync_if_due(self) -> bool:
        """Apply the ``fsync_interval_s`` rule when appends have stopped; call it from a background tick."""
        with self._lock:
            due = self._unsynced and time.monotonic() - self._synced_at >= self._fsync_interval_s
            sync_fd = self._claim_sync() if due and not self._closed else None
        if sync_fd is None:
            return False
        self._sync(sync_fd)
        return True

    def read(self, max_records: int = 1000) -> list[SpoolRecord]:
        """The next records after the last one read (or after the last ack, on open or after rewind)."""
        if max_records < 1:
            raise ConfigError(f"Spool.read: max_records must be >= 1, got {max_records}")
        with self._read_lock:
            self._check_open()
            out: list[SpoolRecord] = []
            while len(out) < max_records:
                segment, offset = self._cursor
                end, following = self._bounds(segment)
                if offset < end:
                    out += read_records(self._path(segment), segment, offset, end, max_records - len(out))
                    self._cursor = out[-1].position
                elif following is None:
                    break
                else:
                    self._cursor = SpoolPosition(following, HEADER_SIZE)
            self._inflight += [record.position for record in out]
            return out

    def ack(self, position: SpoolPosition) -> None:
        """Durably mark the record at ``position`` and every earlier one delivered; frees whole segments."""
        with self._read_lock:
            self._check_open()
            if position <= self._acked:
                return
            done = bisect_left(self._inflight, position) + 1
            if done > len(self._inflight) or self._inflight[done - 1] != position:
                raise self._error(f"cannot ack {position}: read() has not returned it since the last ack/rewind")
            try:
                save_checkpoint(self._dir, position)
                self._acked = position
                del self._inflight[:done]
                self._release(position, done)
            except OSError as exc:
                raise self._error(f"ack {position}: cannot persist it or free segments", exc) from exc

    def rewind(self) -> None:
        """Forget unacknowledged reads: the next ``read`` starts just after the last ack."""
        with self._read_lock:
            self._cursor = self._acked
            self._inflight.clear()

    def close(self) -> None:
        """Sync, close the files and release the directory lock; idempotent."""
        with self._read_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                _datasync(self._active_fd)
            except OSError as exc:
                raise self._error("cannot sync on close", exc) from exc
            finally:
                os.close(self._active_fd)
                os.close(self._lock_fd)

    def _write(self, frame: bytes) -> int | None:
        """Append ``frame`` under ``_lock``; returns a descriptor to sync outside the lock when one is due."""
        self._check_open()
        if self._disk_bytes + len(frame) > self._max_bytes:
            raise self._full(len(frame))
        end = self._ends[self._active]
        try:
            if end > HEADER_SIZE and end + len(frame) > self._segment_bytes:
                end = self._rotate()
            if os.pwrite(self._active_fd, frame, end) != len(frame):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._active_fd, end)
            raise self._error(f"cannot append to {self._path(self._active)}", exc) from exc
        self._ends[self._active] = end + len(frame)
        self._disk_bytes += len(frame)
        self._pending_records += 1
        self._unsynced += 1
        due = self._unsynced >= self._fsync_every or time.monotonic() - self._synced_at >= self._fsync_interval_s
        return self._claim_sync() if due else None

    def _claim_sync(self) -> int:
        """Under ``_lock``: reset the batch and return a private descriptor so the sync runs unlocked."""
        self._check_open()
        self._unsynced, self._synced_at = 0, time.monotonic()
        return os.dup(self._active_fd)

    def _sync(self, fd: int) -> None:
        try:
            _datasync(fd)
        except OSError as exc:
            raise self._error("cannot sync the newest segment", exc) from exc
        finally:
            os.close(fd)

    def _full(self, size: int) -> SpoolFullError:
        return SpoolFullError(
            f"spool {self._dir} is full: {self._disk_bytes} bytes on disk + a {size}-byte record exceeds "
            f"max_bytes={self._max_bytes}; the record was not stored (is Kafka reachable?)",
            directory=str(self._dir),
            pending_bytes=self._disk_bytes,
            max_bytes=self._max_bytes,
        )

    def _rotate(self) -> int:
        """Under ``_lock``; syncs the full segment first so that power-cut survivors are a prefix."""
        _datasync(self._active_fd)
        new_fd = self._create_segment(self._active + 1)
        os.close(self._active_fd)
        self._active, self._active_fd = self._active + 1, new_fd
        self._ends[self._active] = HEADER_SIZE
        self._disk_bytes += HEADER_SIZE
        self._unsynced, self._synced_at = 0, time.monotonic()
        return HEADER_SIZE

    def _create_segment(self, segment: int) -> int:
        path = self._path(segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.pwrite(fd, MAGIC, 0)
            fsync_dir(self._dir)
        except OSError:  # leave nothing behind, so that the next rotation can try the same id again
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return fd

    def _bounds(self, segment: int) -> tuple[int, int | None]:
        """The readable end of ``segment`` (0 if deleted) and the next segment (None for the newest)."""
        with self._lock:
            if segment == self._active:
                return self._ends[segment], None
            return self._ends.get(segment, 0), next(s for s in self._ends if s > segment)

    def _release(self, position: SpoolPosition, count: int) -> None:
        """After an ack: update counters and delete the segments it fully covers."""
        with self._lock:
            self._pending_records -= count
            if position == (self._active, self._ends[self._active]):
                self._rotate()  # drained: seal the active segment so its space comes back
            doomed = [s for s in self._ends if s < position.segment or position == (s, self._ends[s])]
            for segment in doomed:
                self._disk_bytes -= self._ends.pop(segment)
        for segment in doomed:
            try:
                self._path(segment).unlink(missing_ok=True)
            except OSError as exc:
                _log.warning("spool %s: cannot delete acknowledged segment %s: %s", self._dir, segment, exc)

    def _recover(self, checkpoint: SpoolPosition | None) -> SpoolPosition:
        """Scan the segments left on disk, cut off a torn tail; returns the acknowledged position."""
        ids = segment_ids(self._dir)
        for segment in ids:
            if checkpoint and segment < checkpoint.segment:
                self._path(segment).unlink(missing_ok=True)  # fully acked just before a crash
            else:
                skip = checkpoint.offset if checkpoint and segment == checkpoint.segment else 0
                scan = scan_segment(self._path(segment), newest=segment == ids[-1], skip=skip)
                self._ends[segment] = scan.end
                self._pending_records += scan.records
                self._discarded_bytes += scan.discarded
        if self._ends:
            self._active = next(reversed(self._ends))
            self._active_fd = os.open(self._path(self._active), os.O_WRONLY | os.O_CLOEXEC)
        else:
            self._active = checkpoint.segment + 1 if checkpoint else 0
            self._active_fd = self._create_segment(self._active)
            self._ends[self._active] = HEADER_SIZE
        self._disk_bytes = sum(self._ends.values())
        if checkpoint and checkpoint.segment in self._ends:
            end = self._ends[checkpoint.segment]
            acked = SpoolPosition(checkpoint.segment, max(HEADER_SIZE, min(checkpoint.offset, end)))
            # A power cut ate acknowledged records: new ones must not hide behind the old checkpoint.
            if acked != checkpoint:
                save_checkpoint(self._dir, acked)
            return acked
        return SpoolPosition(next(iter(self._ends)), HEADER_SIZE)

    def _path(self, segment: int) -> Path:
        return segment_path(self._dir, segment)

    def _check_open(self) -> None:
        if self._closed:
            raise self._error("the spool is closed")

    def _error(self, what: str, exc: OSError | None = None) -> SpoolError:
        return spool_error(self._dir, what, exc)


def _check_options(max_bytes: int, segment_bytes: int, fsync_every: int, fsync_interval_s: float) -> None:
    rules = {
        "segment_bytes >= 64": segment_bytes >= 64,
        "max_bytes >= segment_bytes": max_bytes >= segment_bytes,
    }
    rules |= {"fsync_every >= 1": fsync_every >= 1, "fsync_interval_s >= 0": fsync_interval_s >= 0}
    if broken := [rule for rule, ok in rules.items() if not ok]:
        values = f"{max_bytes=}, {segment_bytes=}, {fsync_every=}, {fsync_interval_s=}"
        raise ConfigError(f"Spool: options must satisfy {', '.join(broken)} (got {values})")
