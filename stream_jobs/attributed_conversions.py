"""Attribution: each conversion event is joined to the unit's first exposures.

An event is attributed to experiment X when the unit's first exposure to X has
``exposure_ts <= event_ts <= exposure_ts + attribution_window``. Clients flush at different times, so an
event may arrive before the exposure that precedes it: every event stays in the unit's buffer for
``allowed_lateness`` of event time, measured against the partition's watermark (the smaller of the two
inputs' largest event times: exposures and events are read at their own pace), and an exposure
arriving meanwhile claims the buffered events in its window.

Health, never a silent drop: an event that arrives when the watermark is already past
``event_ts + allowed_lateness`` is *late* (attributed if it can be, with ``late=true``, and counted); a
buffered event that leaves the buffer unattributed is *unattributed* (its unit was never exposed in
time) and counted.
"""

from __future__ import annotations

from typing import Any

from stream_jobs.first_exposures import ExperimentEntry

__all__ = ["PendingEvent", "attribute", "conversion_record", "in_window"]

# A buffered event: the Event record plus "a", the experiments it was attributed to so far.
PendingEvent = dict[str, Any]


def in_window(entry: ExperimentEntry, event_ts: int, window_ms: int) -> bool:
    return entry["ts"] <= event_ts <= entry["ts"] + window_ms


def conversion_record(event: dict[str, Any], experiment: str, entry: ExperimentEntry, late: bool) -> dict[str, Any]:
    """The AttributedConversion record: the event, plus the first exposure it is attributed to."""
    return {
        "event_id": event["event_id"],
        "unit_type": event["unit_type"],
        "unit_id": event["unit_id"],
        "name": event["name"],
        "value": event["value"],
        "ts": event["ts"],
        "received_ts": event.get("received_ts"),
        "properties": event["properties"],
        "source": event["source"],
        "experiment": experiment,
        "revision": entry["r"],
        "variant": entry["v"],
        "exposure_event_id": entry["id"],
        "exposure_ts": entry["ts"],
        "latency_ms": event["ts"] - entry["ts"],
        "late": late,
    }


def attribute(
    event: dict[str, Any], experiments: dict[str, ExperimentEntry], windows: dict[str, int], late: bool
) -> list[dict[str, Any]]:
    """Conversions of ``event`` to every experiment whose first exposure's window holds it."""
    return [
        conversion_record(event, key, entry, late)
        for key, entry in experiments.items()
        if key in windows and in_window(entry, event["ts"], windows[key])
    ]
