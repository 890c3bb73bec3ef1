"""The contract on the real broker: out-of-contract, null-key and wrong-key records go to the dead-letter topic.

Valid and bad records are written raw to the input topics of a real ``abstream jobs run`` worker; every bad
one must come out on the dead-letter topic with its kind, its reason and its bytes, and none may produce a
first exposure, a conversion or an unattributed event. The valid ones are counted as usual.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from schemas.serde import AvroSerde
from tests.integration import jobs_traffic as ref
from tests.integration.test_stream_jobs import Pipeline, pipeline  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "moon_mars"
VALID_UNITS = [f"ok-{i}" for i in range(20)]
# (field, value, the start of the message): exposures of units of their own, so any first exposure would show.
BAD_EXPOSURES = [
    ("sampling_rate", 5.0, "Exposure.sampling_rate: must be > 0 and <= 1 (got 5.0)"),
    ("sampling_rate", 0.0, "Exposure.sampling_rate: must be > 0 and <= 1 (got 0.0)"),
    ("sampling_rate", -1.0, "Exposure.sampling_rate: must be > 0 and <= 1 (got -1.0)"),
    ("revision", -1, "Exposure.revision: must be >= 0 and < 2147483648 (got -1)"),
    ("bucket_position", 1.5, "Exposure.bucket_position: must be >= 0 and < 1 (got 1.5)"),
    ("hash_version", 0, "Exposure.hash_version: must be >= 1 and < 2147483648 (got 0)"),
    ("event_id", "not-a-uuid", "Exposure.event_id: must be a valid UUID"),
    ("variant", "", "Exposure.variant: must be a non-empty string (got '')"),
]
# Events of valid units, which would be attributed conversions if they passed.
BAD_EVENTS = [
    ("event_id", "12345", "Event.event_id: must be a valid UUID"),
    ("name", "", "Event.name: must be a non-empty string (got '')"),
]


def _exposure(unit: str, **change: Any) -> dict[str, Any]:
    return {**ref.exposure_record(KEY, unit, ref.expected_variant(KEY, unit), ref.T0), **change}


def _event(unit: str, **change: Any) -> dict[str, Any]:
    return {**ref.event_record(unit, ref.T0 + ref.MINUTE), **change}


def test_bad_records_are_dead_lettered_with_kind_reason_and_bytes_and_never_counted(pipeline: Pipeline) -> None:  # noqa: F811
    exposures, events = AvroSerde("Exposure"), AvroSerde("Event")
    # (topic, key, raw bytes, kind, message start, unit, event id) of every bad record
    bad: list[tuple[str, bytes | None, bytes, str, str, str, str]] = []
    for i, (field, value, message) in enumerate(BAD_EXPOSURES):
        record = _exposure(f"bad-{i}", **{field: value})
        bad.append(("exposures", record["unit_id"].encode(), exposures.encode(record), "invalid_record", message,
                    record["unit_id"], record["event_id"]))  # fmt: skip
    for i, (field, value, message) in enumerate(BAD_EVENTS):
        record = _event(VALID_UNITS[i], **{field: value})
        bad.append(("events", record["unit_id"].encode(), events.encode(record), "invalid_record", message,
                    record["unit_id"], record["event_id"]))  # fmt: skip
    for role, serde, build in (("exposures", exposures, _exposure), ("events", events, _event)):
        for key in (None, b"someone-else"):
            unit = f"key-{role}-{key is None}" if role == "exposures" else VALID_UNITS[5]
            record = build(unit)
            reason = f"key {key!r} is not the unit id {unit!r}"
            bad.append((role, key, serde.encode(record), "wrong_key", reason, unit, record["event_id"]))

    pipeline.start("w1")
    for role, key, raw, *_ in bad:
        pipeline.producer.produce(pipeline.prefix + role, raw, key)
    pipeline.produce("exposures", [_exposure(u) for u in VALID_UNITS], "Exposure")
    valid_events = [_event(u) for u in VALID_UNITS]
    pipeline.produce("events", valid_events, "Event")

    letters = pipeline.wait_for("dead-letters", len(bad), timeout=45)
    pipeline.wait_for("first-exposures", len(VALID_UNITS), timeout=30)
    pipeline.wait_for("attributed-conversions", len(valid_events), timeout=30)
    time.sleep(1)  # anything a bad record had produced would be out by now, with its batch
    firsts, conversions = pipeline.read("first-exposures"), pipeline.read("attributed-conversions")

    got = sorted((d["raw"], d["key"], d["error_kind"]) for d in letters)
    assert got == sorted((raw, key, kind) for _, key, raw, kind, *_ in bad)
    by_raw = {d["raw"]: d for d in letters}
    for role, _, raw, kind, message, _, _ in bad:
        letter = by_raw[raw]
        assert letter["source_topic"] == pipeline.prefix + role
        if kind == "wrong_key":
            assert message in letter["message"]
        else:
            assert letter["message"].startswith(message)
    assert {f["unit_id"] for f in firsts} == set(VALID_UNITS)  # not one of the bad exposures' units
    assert {c["event_id"] for c in conversions} == {e["event_id"] for e in valid_events}
    bad_ids = {event_id for *_, event_id in bad}
    assert not bad_ids & {u["event_id"] for u in pipeline.read("unattributed-events")}
