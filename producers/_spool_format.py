"""The spool's bytes on disk: segment files, framed records, and reading them back after a crash.

A segment ``{id:020d}.seg`` is the magic ``abspool1`` then frames ``>I n, >I crc32(n bytes + payload),
payload``; the first frame that overruns the file or fails its CRC ends the segment (a torn write, cut off
on open in the newest segment). payload = ``>H topic_len >i key_len(-1: None) >H n_headers``, topic, key,
per header ``>H >I`` lengths, name, value; then the value.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from abstream.errors import SpoolError

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "Header",
    "SegmentScan",
    "SpoolPosition",
    "SpoolRecord",
    "encode_frame",
    "read_records",
    "scan_segment",
    "segment_ids",
    "segment_path",
    "spool_error",
]

_log = logging.getLogger("producers.spool")

Header = tuple[str, bytes]

MAGIC = b"abspool1"
HEADER_SIZE = len(MAGIC)
_SUFFIX = ".seg"
_FRAME = struct.Struct(">II")
_LEN = struct.Struct(">I")
_FIXED = struct.Struct(">HiH")
_HDR = struct.Struct(">HI")
_READ_CHUNK = 1 << 20


class SpoolPosition(NamedTuple):
    """Where a record ends: ``(segment id, offset just past its frame)``; tuples order like the spool."""

    segment: int
    offset: int


class SpoolRecord(NamedTuple):
    """One spooled Kafka message; pass ``position`` to :meth:`Spool.ack` once it is delivered."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[Header] | None
    position: SpoolPosition


class SegmentScan(NamedTuple):
    """What opening a segment found: the end of its last intact frame, its records past the checkpoint,
    and the bytes after that end that were cut off or skipped."""

    end: int
    records: int
    discarded: int


def spool_error(directory: Path, what: str, exc: OSError | None = None) -> SpoolError:
    """The error every spool failure raises: the directory, what failed, and the OS's reason."""
    reason = f": {exc.strerror or exc}" if exc else ""
    return SpoolError(f"spool {directory}: {what}{reason}", directory=str(directory))


def segment_path(directory: Path, segment: int) -> Path:
    return directory / f"{segment:020d}{_SUFFIX}"


def segment_ids(directory: Path) -> list[int]:
    """The ids of the segment files in ``directory``, oldest first."""
    names = (p.name.removesuffix(_SUFFIX) for p in directory.glob(f"*{_SUFFIX}"))
    return sorted(int(name) for name in names if name.isdigit())


def encode_frame(topic: str, key: bytes | None, value: bytes, headers: Sequence[Header] | None) -> bytes:
    """One record as the frame ``append`` writes: length, CRC, payload."""
    name = topic.encode()
    parts = [_FIXED.pack(len(name), -1 if key is None else len(key), len(headers) if headers else 0), name]
    if key:
        parts.append(key)
    for header, header_value in headers or ():
        encoded = header.encode()
        parts += (_HDR.pack(len(encoded), len(header_value)), encoded, header_value)
    parts.append(value)
    payload = b"".join(parts)
    size = _LEN.pack(len(payload))
    return b"".join((size, _LEN.pack(zlib.crc32(payload, zlib.crc32(size))), payload))


def scan_segment(path: Path, *, newest: bool, skip: int) -> SegmentScan:
    """Find the intact frames of a segment left on disk; a torn tail of the newest one is cut off."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if not MAGIC.startswith(data):
            raise spool_error(path.parent, f"{path} is not a spool segment (bad magic); move it out")
        with path.open("r+b") as f:  # created just before a power cut: an empty segment
            f.write(MAGIC)
        return SegmentScan(HEADER_SIZE, 0, 0)
    end, count = HEADER_SIZE, 0
    for _, stop in _frames(memoryview(data), HEADER_SIZE):
        end, count = stop, count + (stop > skip)
    if end < len(data):
        what = "torn tail cut off" if newest else "unreadable, skipped (corrupt segment)"
        _log.warning("spool %s: %d bytes after offset %d of %s %s", path.parent, len(data) - end, end, path, what)
        if newest:
            os.truncate(path, end)
    return SegmentScan(end, count, len(data) - end)


def read_records(path: Path, segment: int, offset: int, end: int, limit: int) -> list[SpoolRecord]:
    """Up to ``limit`` records of ``segment`` from ``offset`` (a frame boundary) to ``end``; at least one."""
    with path.open("rb", buffering=0) as f:
        buf = os.pread(f.fileno(), min(end - offset, _READ_CHUNK), offset)
        first = _FRAME.size + _LEN.unpack_from(buf)[0] if len(buf) >= _FRAME.size else 0
        if first > len(buf):  # a record bigger than the chunk
            buf = os.pread(f.fileno(), min(first, end - offset), offset)
    view, records = memoryview(buf), []
    try:
        for start, stop in _frames(view, 0):
            records.append(_decode(view[start:stop], SpoolPosition(segment, offset + stop)))
            if len(records) == limit:
                return records
    except (struct.error, UnicodeDecodeError) as exc:
        raise spool_error(path.parent, f"undecodable record after {path}:{offset}: {exc}") from exc
    if not records:  # the bytes were intact when written or opened
        raise spool_error(path.parent, f"corrupt frame at {path}:{offset}; was the file modified?")
    return records


def _frames(buf: memoryview, offset: int) -> Iterator[tuple[int, int]]:
    """(payload start, frame end) of each intact frame from ``offset``, up to the first torn one."""
    while offset + _FRAME.size <= len(buf):
        size, crc = _FRAME.unpack_from(buf, offset)
        start, end = offset + _FRAME.size, offset + _FRAME.size + size
        if size < _FIXED.size or end > len(buf):
            return
        if zlib.crc32(buf[start:end], zlib.crc32(buf[offset : offset + _LEN.size])) != crc:
            return
        yield start, end
        offset = end


def _decode(payload: memoryview, position: SpoolPosition) -> SpoolRecord:
    topic_len, key_len, n_headers = _FIXED.unpack_from(payload, 0)
    at = _FIXED.size + topic_len
    topic = str(payload[_FIXED.size : at], "utf-8")
    key = None
    if key_len >= 0:
        key, at = bytes(payload[at : at + key_len]), at + key_len
    headers: list[Header] = []
    for _ in range(n_headers):
        name_len, value_len = _HDR.unpack_from(payload, at)
        at += _HDR.size
        name, at = str(payload[at : at + name_len], "utf-8"), at + name_len
        headers.append((name, bytes(payload[at : at + value_len])))
        at += value_len
    return SpoolRecord(topic, key, bytes(payload[at:]), headers or None, position)
