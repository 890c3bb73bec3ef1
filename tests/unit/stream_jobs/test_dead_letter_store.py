"""Re-keying dead letters: a wrong_key letter goes back keyed by its record's unit id."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from abstream.errors import InvalidRecordError
from schemas.models import Event, Exposure
from schemas.serde import AvroSerde
from stream_jobs.dead_letter_store import unit_key


def letter(raw: bytes, key: bytes | None) -> dict[str, Any]:
    return {"source_topic": "t.exposures", "source_partition": 3, "source_offset": 41, "key": key, "raw": raw,
            "error_kind": "wrong_key"}  # fmt: skip


@pytest.mark.parametrize("record", ["Exposure", "Event"])
def test_a_wrong_key_letter_is_keyed_by_its_unit_id(record: str) -> None:
    common = {"event_id": uuid.uuid4(), "unit_type": "user_id", "unit_id": "u-7é"}
    model = (
        Exposure(**common, experiment="moon_mars", revision=1, variant="Moon", scheme="sha256-weights", client_ts=1)
        if record == "Exposure"
        else Event(**common, name="click", ts=1)
    )
    raw = AvroSerde(record).encode(model.to_avro())

    assert unit_key(letter(raw, b"someone-else")) == "u-7é".encode()
    assert unit_key(letter(raw, None)) == "u-7é".encode()


def test_bytes_that_hold_no_unit_say_where_they_came_from() -> None:
    with pytest.raises(InvalidRecordError, match=r"t\.exposures\[3\]@41 \(wrong_key\).*without --rekey"):
        unit_key(letter(b"\x00garbage", b"k"))
