"""First exposures: the first exposure of each (experiment, unit), emitted once; later ones absorbed.

"First" is by event time, ties broken by event id, so the answer does not depend on arrival order:
when an earlier exposure arrives after a later one was emitted, a corrected FirstExposure is emitted
for the same key (the sink keeps the earliest). A retry with the same event id never counts as a
duplicate. With ``dedupe: window`` a unit gets a new first exposure once ``dedupe_window_ms`` has
passed since the one that opened the current window.

The per-(experiment, unit) entry also remembers every variant the unit was logged in, with the time it
was first seen: the variant-switch job reads it.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from fastavro import schemaless_writer

from schemas.serde import AvroSerde, single_object_header

__all__ = ["ExperimentEntry", "FirstExposureWriter", "first_exposure_record", "observe"]

# One entry of a unit's state for one experiment (JSON-able, short keys: it is stored per unit):
#   id, ts, v, r  the first exposure's event id, event time, variant and revision
#   ws            the start of the current dedupe window (== ts unless dedupe is 'window')
#   d             duplicates absorbed (other event ids of the same experiment and unit)
#   de            the value of d when the current first exposure was emitted
#   wo            with dedupe 'window': [event id, d] of the exposure that opened the current window, as emitted
#   seen          variant -> [first event time, event id that first showed it]
#   sf            [event id, flagged_ts] of the latest variant-switch flag (stream_jobs.processor)
ExperimentEntry = dict[str, Any]


def observe(
    entry: ExperimentEntry | None, exposure: dict[str, Any], dedupe_window_ms: int | None
) -> tuple[ExperimentEntry, bool]:
    """Fold ``exposure`` into ``entry``; returns the entry and whether a FirstExposure must be emitted."""
    ts, event_id, variant = exposure["client_ts"], exposure["event_id"], exposure["variant"]
    if entry is None:
        entry = {"id": event_id, "ts": ts, "v": variant, "r": exposure["revision"], "ws": ts, "d": 0, "seen": {}}
        _see(entry, variant, ts, event_id)
        return entry, True
    _see(entry, variant, ts, event_id)
    if event_id == entry["id"]:
        return entry, False  # a retry of the first exposure itself
    if (ts, event_id) < (entry["ts"], entry["id"]):
        entry.update(id=event_id, ts=ts, v=variant, r=exposure["revision"], ws=min(entry["ws"], ts))
        entry["d"] += 1  # the one it replaces becomes a duplicate
        return entry, True
    if dedupe_window_ms is not None and ts >= entry["ws"] + dedupe_window_ms:
        entry["ws"] = ts  # a new window opens: this exposure is its first
        return entry, True
    entry["d"] += 1
    return entry, False


def _see(entry: ExperimentEntry, variant: str, ts: int, event_id: str) -> None:
    seen = entry["seen"]
    if variant not in seen or (ts, event_id) < tuple(seen[variant]):
        seen[variant] = [ts, event_id]


def first_exposure_record(exposure: dict[str, Any], duplicates: int) -> dict[str, Any]:
    """The FirstExposure record: the exposure as logged, plus the duplicates absorbed so far."""
    return {**exposure, "duplicates": duplicates}


class FirstExposureWriter:
    """FirstExposure messages, from the exposure's own bytes when it was written in our Exposure version.

    FirstExposure is Exposure with ``duplicates`` (a long) appended, and Avro writes a record as its
    fields in order: the message is the exposure's body followed by one long. That spares re-encoding
    every field, the largest Avro cost per record. Used only while the two schemas line up that way
    (checked here); an exposure in another version, or another framing, is encoded field by field.
    """

    def __init__(self) -> None:
        self._serde = AvroSerde("FirstExposure")
        exposure = AvroSerde("Exposure").version
        fields = self._serde.version.wire["fields"]
        aligned = fields[:-1] == exposure.wire["fields"] and fields[-1]["type"] == "long"
        self._exposure_header = single_object_header(exposure) if aligned else None
        self._header = single_object_header(self._serde.version)

    @property
    def reuses_exposure_bytes(self) -> bool:
        """Whether the schemas line up so that exposures in our version are extended, not re-encoded."""
        return self._exposure_header is not None

    def encode(self, record: dict[str, Any], exposure_raw: bytes | None) -> bytes:
        """The message for ``record`` (``first_exposure_record`` of the exposure ``exposure_raw`` holds)."""
        header = self._exposure_header
        if header is None or exposure_raw is None or not exposure_raw.startswith(header):
            return self._serde.encode(record)
        return self._header + exposure_raw[len(header) :] + _long(record["duplicates"])


def _long(value: int) -> bytes:
    return _SMALL_LONGS[value] if 0 <= value < len(_SMALL_LONGS) else _write_long(value)


def _write_long(value: int) -> bytes:
    buf = BytesIO()
    schemaless_writer(buf, {"type": "long"}, value)
    return buf.getvalue()


_SMALL_LONGS = [_write_long(n) for n in range(256)]
