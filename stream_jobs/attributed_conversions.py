"""Attribution: each conversion event is joined to the unit's first exposures.

An event is attributed to experiment X when the unit's first exposure to X has
``exposure_ts <= event_ts <= exposure_ts + attribution_window``. Clients flush at different times, so an
event may arrive before the exposure that precedes it: every event stays in the unit's buffer for
``allowed_lateness`` of event time, measured against the partition's watermark (the smaller of the two
inputs' largest event times: exposures and events are read at their own pace), and an exposure
arriving meanwhile claims the buffered events in its window.

Never a silent drop: an event that arrives when the watermark is already past
``event_ts + allowed_lateness`` is *late*: attributed if it can be, with ``late=true``, and never
buffered. Every event that ends up attributed to no experiment goes out as an UnattributedEvent with
the reason (``unattributed_record``), once that is certain: a late one at once (``late``, or
``never_exposed`` if the unit has no first exposure: the answer must not depend on the watermark, since a
replay may meet the event again with the unit's state gone), a buffered one when it leaves the buffer.
The sink counts them by event id, so a replay never counts one twice.
"""

from __future__ import annotations

from typing import Any

from stream_jobs.first_exposures import ExperimentEntry

__all__ = ["PendingEvent", "attribute", "conversion_record", "in_window", "unattributed_record"]

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


def unattributed_record(event: dict[str, Any], reason: str) -> dict[str, Any]:
    """The UnattributedEvent record: the event (a buffered one without its claims), plus why."""
    record = {field: event.get(field) for field in _EVENT_FIELDS}
    record["reason"] = reason
    return record


_EVENT_FIELDS = ("event_id", "unit_type", "unit_id", "name", "value", "ts", "received_ts", "properties", "source")


def attribute(
    event: dict[str, Any], experiments: dict[str, ExperimentEntry], windows: dict[str, int], late: bool
) -> list[dict[str, Any]]:
    """Conversions of ``event`` to every experiment whose first exposure's window holds it."""
    return [
        conversion_record(event, key, entry, late)
        for key, entry in experiments.items()
        if key in windows and in_window(entry, event["ts"], windows[key])
    ]
