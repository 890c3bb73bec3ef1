"""Request validation: each record checked with the schema models, the bad ones reported by index and field."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from abstream.errors import BatchTooLargeError, InvalidRecordError
from producers.collector.validation import parse_batch
from schemas.models import Event, Exposure

RECEIVED = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
EXPOSURE = {"experiment": "moon_mars", "revision": 1, "variant": "Moon", "unit_type": "device_id", "unit_id": "d-1",
            "scheme": "sha256-weights"}  # fmt: skip
EVENT = {"unit_type": "device_id", "unit_id": "d-1", "name": "button_click"}
SOURCE = {"sdk": "abstream-collector", "sdk_version": "0.1.0", "app": None, "host": "h"}


def _ids():
    counter = itertools.count()
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def _parse(payload: object, **kwargs):
    return parse_batch(payload, received=RECEIVED, new_id=_ids(), source=SOURCE, **kwargs)


def test_a_valid_batch_gets_ids_times_and_source_filled_in() -> None:
    batch = _parse({"exposures": [EXPOSURE], "events": [{**EVENT, "value": 3, "properties": {"n": 2, "ok": True}}]})
    assert batch.rejected == []
    (k1, i1, exposure), (k2, i2, event) = batch.valid
    assert (k1, i1, k2, i2) == ("exposure", 0, "event", 0)
    assert isinstance(exposure, Exposure) and isinstance(event, Event)
    assert exposure.received_ts == RECEIVED and exposure.client_ts == RECEIVED and event.ts == RECEIVED
    assert str(exposure.event_id) == "00000000-0000-4000-8000-000000000000"
    assert exposure.source.sdk == "abstream-collector"
    assert event.value == 3.0 and event.properties == {"n": "2", "ok": "true"}


def test_clients_may_send_their_own_ids_times_and_source() -> None:
    given = {**EXPOSURE, "event_id": "6f1c1f0e-8d1c-4d7a-9b7e-0b3b6a1d2c3e", "client_ts": "2025-03-01T11:59:00+01:00",
             "source": {"sdk": "abstream-js", "app": "shop"}, "context": {"platform": "web"}}  # fmt: skip
    [(_, _, exposure)] = _parse({"exposures": [given]}).valid
    assert str(exposure.event_id) == given["event_id"] and exposure.client_ts == datetime(
        2025, 3, 1, 10, 59, tzinfo=UTC
    )
    assert exposure.source.sdk == "abstream-js" and exposure.source.host is None
    [(_, _, event)] = _parse({"events": [{**EVENT, "ts": 1_740_830_400_000}]}).valid
    assert event.ts == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_bad_records_are_reported_by_index_and_field_and_never_block_the_others() -> None:
    exposures = [
        EXPOSURE,
        {**EXPOSURE, "revision": "3", "variant": ""},
        "not a record",
        {**EXPOSURE, "received_ts": 5},
        {**EXPOSURE, "client_ts": "2025-03-01T12:00:00", "colour": "red"},
        {**EXPOSURE, "params": {"nested": {"a": 1}}, "bucket_position": 1.5},
    ]
    batch = _parse({"exposures": exposures, "events": [{**EVENT, "value": "12"}, EVENT]})
    assert [(kind, index) for kind, index, _ in batch.valid] == [("exposure", 0), ("event", 1)]
    errors = {(r.kind, r.index): sorted(e.field for e in r.errors) for r in batch.rejected}
    assert errors == {
        ("exposure", 1): ["revision", "variant"],
        ("exposure", 2): [""],
        ("exposure", 3): ["received_ts"],
        ("exposure", 4): ["client_ts", "colour"],
        ("exposure", 5): ["bucket_position", "params.nested"],
        ("event", 0): ["value"],
    }
    [received] = [r for r in batch.rejected if r.index == 3]
    expected = [{"field": "received_ts", "message": "set by the collector; leave it out"}]
    assert received.as_json() == {"index": 3, "kind": "exposure", "errors": expected}


@pytest.mark.parametrize(
    ("payload", "field"),
    [([EXPOSURE], "body"), ({"exposure": [EXPOSURE]}, "exposure"), ({"exposures": EXPOSURE}, "exposures")],
)
def test_a_body_that_is_not_a_batch_is_refused_whole(payload: object, field: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        _parse(payload)
    assert caught.value.field == field


def test_too_many_records_are_refused_before_any_validation() -> None:
    with pytest.raises(BatchTooLargeError, match="3 records; at most 2"):
        _parse({"exposures": [EXPOSURE, EXPOSURE], "events": ["junk"]}, max_records=2)
    assert _parse({}).valid == []
