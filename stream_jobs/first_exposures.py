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

from typing import Any

__all__ = ["ExperimentEntry", "first_exposure_record", "observe"]

# One entry of a unit's state for one experiment (JSON-able, short keys: it is stored per unit):
#   id, ts, v, r  the first exposure's event id, event time, variant and revision
#   ws            the start of the current dedupe window (== ts unless dedupe is 'window')
#   d             duplicates absorbed (other event ids of the same experiment and unit)
#   de            the value of d when the current first exposure was emitted
#   seen          variant -> [first event time, event id that first showed it]
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
