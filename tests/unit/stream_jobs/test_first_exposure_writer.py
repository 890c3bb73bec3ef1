"""FirstExposureWriter: a FirstExposure built from the exposure's bytes is the message a full encode writes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.serde import AvroSerde
from stream_jobs.first_exposures import FirstExposureWriter, first_exposure_record

EXPOSURES, FIRST = AvroSerde("Exposure"), AvroSerde("FirstExposure")
WRITER = FirstExposureWriter()

_text = st.text(min_size=1, max_size=12)
_maybe_text = st.none() | _text
_maps = st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)


@st.composite
def exposures(draw: Any) -> dict[str, Any]:
    return {
        "event_id": draw(_text), "experiment": draw(_text), "revision": draw(st.integers(1, 2**31 - 1)),
        "variant": draw(_text), "unit_type": "user_id", "unit_id": draw(_text), "scheme": "sha256-weights",
        "hash_seed": draw(_maybe_text), "hash_version": draw(st.none() | st.integers(0, 9)),
        "bucket_position": draw(st.none() | st.floats(0, 1)), "bucket_index": draw(st.none() | st.integers(0, 9999)),
        "params": draw(_maps), "hash_used": draw(st.booleans()), "sticky_bucket_used": draw(st.booleans()),
        "forced": draw(st.booleans()),
        "source": {"sdk": draw(_text), "sdk_version": "1", "app": draw(_maybe_text), "host": draw(_maybe_text)},
        "client_ts": draw(st.integers(0, 2**62)), "received_ts": draw(st.none() | st.integers(0, 2**62)),
        "context": draw(_maps), "sampling_rate": draw(st.floats(0, 1)),
    }  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(exposures(), st.integers(0, 2**62))
def test_built_from_the_exposure_bytes_it_is_the_fully_encoded_message(exposure: dict[str, Any], dups: int) -> None:
    record = first_exposure_record(exposure, dups)

    fast = WRITER.encode(record, EXPOSURES.encode(exposure))

    assert WRITER.reuses_exposure_bytes
    assert fast == FIRST.encode(record)
    assert FIRST.decode(fast) == record


@given(exposures())
def test_an_exposure_in_another_framing_is_encoded_field_by_field(exposure: dict[str, Any]) -> None:
    record = first_exposure_record(exposure, 2)
    unframed = EXPOSURES.encode(exposure)[10:]  # e.g. a registry-framed or unknown-version message

    assert WRITER.encode(record, unframed) == FIRST.encode(record)
    assert WRITER.encode(record, None) == FIRST.encode(record)
