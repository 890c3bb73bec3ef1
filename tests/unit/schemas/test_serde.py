"""Single-object encoding: round trips for every record, resolution across versions, precise errors."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from abstream.errors import ConfigError, DecodeError, EncodeError, InvalidRecordError
from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.serde import AvroSerde, decode_any, single_object_header
from tests.unit.schemas.schema_examples import records

EXPOSURE: dict[str, Any] = {
    "event_id": "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1",
    "experiment": "checkout_v2",
    "revision": 3,
    "variant": "B",
    "unit_type": "user_id",
    "unit_id": "u-123",
    "scheme": "growthbook",
    "hash_seed": "checkout_v2",
    "hash_version": 2,
    "bucket_position": 0.4312,
    "source": {"sdk": "abstream-python", "sdk_version": "0.1.0", "app": "shop", "host": "web-1"},
    "client_ts": 1767225600000,
    "context": {"platform": "web"},
}
EVENT: dict[str, Any] = {
    "event_id": "0b8a1c55-4a07-4f5e-a1c4-8f6e0d5f0a11",
    "unit_type": "user_id",
    "unit_id": "u-123",
    "name": "purchase",
    "value": 42.5,
    "ts": 1767225700000,
}


@pytest.mark.parametrize("name", default_catalog().names())
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_record_round_trips(name: str, data: st.DataObject) -> None:
    serde = AvroSerde(name)
    record = data.draw(records(serde.version))
    raw = serde.encode(record)
    assert serde.decode(raw) == record
    assert decode_any(raw).record == record


def test_message_is_header_then_plain_avro_body() -> None:
    serde = AvroSerde("Exposure")
    raw = serde.encode(EXPOSURE)
    body = io.BytesIO()
    schemaless_writer(body, serde.version.wire, EXPOSURE)
    assert raw[:2] == b"\xc3\x01"
    assert int.from_bytes(raw[2:10], "little") == serde.version.fingerprint
    assert raw == single_object_header(serde.version) + body.getvalue()


def test_decoding_fills_defaults_the_writer_left_out() -> None:
    decoded = AvroSerde("Exposure").decode(AvroSerde("Exposure").encode(EXPOSURE))
    assert decoded["sampling_rate"] == 1.0 and decoded["received_ts"] is None and decoded["params"] == {}
    assert decoded["hash_used"] is True and decoded["forced"] is False


def _evolved(version: SchemaVersion, field: dict[str, Any]) -> SchemaVersion:
    schema = copy.deepcopy(dict(version.schema))
    schema["fields"].append(field)
    return SchemaVersion.build(version.name, version.version + 1, schema)


def test_readers_resolve_every_known_version_into_their_own() -> None:
    v1 = default_catalog().latest("Exposure")
    v2 = _evolved(v1, {"name": "surface", "type": "string", "default": "unknown", "doc": "Where it was shown."})
    catalog = SchemaCatalog([v1, v2])
    old, new = AvroSerde("Exposure", version=1, catalog=catalog), AvroSerde("Exposure", catalog=catalog)

    from_old = new.decode_message(old.encode(EXPOSURE))
    assert from_old.writer is v1 and from_old.record["surface"] == "unknown"

    from_new = old.decode_message(new.encode({**EXPOSURE, "surface": "cart"}))
    assert from_new.writer is v2 and "surface" not in from_new.record
    assert from_new.record["variant"] == "B"


def test_decode_any_names_the_record() -> None:
    decoded = decode_any(AvroSerde("Event").encode(EVENT))
    assert decoded.writer.full_name == "io.abstream.Event" and decoded.record["name"] == "purchase"


GOOD = AvroSerde("Exposure").encode(EXPOSURE)


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        (b"", "truncated", "empty message"),
        (GOOD[:6], "truncated", "shorter than the 10-byte single-object header"),
        (GOOD[:-3], "truncated", "body ends early"),
        (GOOD + b"\x00", "trailing_bytes", "1 byte"),
        (b"\xc3\x02" + GOOD[2:], "bad_magic", "c3 02, expected c3 01"),
        (b'{"variant": "B"}', "bad_magic", "looks like JSON"),
        (
            b"\xc3\x01" + bytes(8) + GOOD[10:],
            "unknown_fingerprint",
            "0x0000000000000000 is not one of the known",
        ),
        (GOOD[:10] + b"\x05" + GOOD[11:], "schema_mismatch", "Exposure v1: a negative length"),
        (GOOD[:11] + b"\xff" + GOOD[12:], "schema_mismatch", "Exposure v1: UnicodeDecodeError"),
        (b"\x00\x00\x00\x00\x07" + GOOD[10:], "no_registry", "schema id 7"),
        (
            AvroSerde("Event").encode(EVENT),
            "wrong_record",
            "holds io.abstream.Event v1, expected io.abstream.Exposure",
        ),
    ],
)
def test_undecodable_messages_say_why_and_keep_the_bytes(raw: bytes, kind: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as caught:
        AvroSerde("Exposure").decode(raw, topic="exposures", partition=2, offset=41)
    error = caught.value
    assert (error.kind, error.raw) == (kind, raw)
    assert (error.topic, error.partition, error.offset) == ("exposures", 2, 41)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"revision": "3"}, "revision", r"Exposure.revision: '3' \(str\), expected int"),
        ({"variant": None}, "variant", "Exposure.variant: null or missing, expected string"),
        ({"hash_seed": 7}, "hash_seed", "expected null or string"),
        ({"source": {"sdk": 5}}, "source.sdk", r"Exposure.source.sdk: 5 \(int\), expected null or string"),
        ({"context": {"platform": 1}}, "context", "Exposure.context"),
        ({"varient": "B"}, "varient", "unknown field\\(s\\) 'varient'; the fields are"),
    ],
)
def test_records_that_do_not_fit_name_the_field(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(EncodeError, match=message) as caught:
        AvroSerde("Exposure").encode({**EXPOSURE, **change})
    assert caught.value.field == field
    assert isinstance(caught.value, InvalidRecordError | ValueError)


def test_missing_required_field_is_named() -> None:
    record = {key: value for key, value in EXPOSURE.items() if key != "unit_id"}
    with pytest.raises(EncodeError, match=r"Exposure\.unit_id") as caught:
        AvroSerde("Exposure").encode(record)
    assert caught.value.field == "unit_id"


DEFINITION: dict[str, Any] = {
    "key": "checkout_v2",
    "revision": 3,
    "title": "Checkout",
    "unit_type": "user_id",
    "scheme": "sha256-weights",
    "scheme_params": "{}",
    "variants": [{"name": "A", "weight": 1}, {"name": "B", "weight": 1}],
    "fallback_variant": "A",
    "state": "active",
    "attribution_window_ms": 86_400_000,
    "dedupe": "first_ever",
    "published_ts": 0,
    "definition_hash": "0" * 64,
}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"variants": [{"name": "A", "weight": "heavy"}]},
            "variants[].weight",
            "'heavy' \\(str\\), expected int",
        ),
        ({"state": "paused"}, "state", "'paused' \\(str\\), expected io.abstream.ExperimentState"),
    ],
)
def test_nested_and_enum_fields_are_named_by_path(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(EncodeError, match=message) as caught:
        AvroSerde("ExperimentDefinition").encode({**DEFINITION, **change})
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"revision": 2**31}, "revision"),
        ({"revision": 2.5}, "revision"),
        ({"bucket_index": True}, "bucket_index"),
    ],
)
def test_validate_catches_what_plain_encoding_would_coerce(change: dict[str, Any], field: str) -> None:
    with pytest.raises(EncodeError) as caught:
        AvroSerde("Exposure", validate=True).encode({**EXPOSURE, **change})
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"framing": "json"}, "framing must be"), ({"framing": "confluent"}, "needs registry=")],
)
def test_bad_options_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AvroSerde("Exposure", **kwargs)
