"""The Confluent framing, against confluent-kafka's own serializers on its in-process mock registry."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from abstream.errors import DecodeError, RegistryError, UnknownSchemaError
from schemas.catalog import default_catalog
from schemas.models import Exposure
from schemas.registry import ConfluentRegistry
from schemas.serde import AvroSerde, decode_any

CONTEXT = SerializationContext("exposures", MessageField.VALUE)


def _exposure() -> Exposure:
    return Exposure(
        event_id=uuid4(),
        experiment="checkout_v2",
        revision=3,
        variant="B",
        unit_type="user_id",
        unit_id="u-1",
        scheme="sha256-weights",
        client_ts=datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
        context={"platform": "ios"},
    )


@pytest.fixture
def client() -> Any:
    return SchemaRegistryClient.new_client({"url": "mock://abstream-tests"})


def test_confluent_framing_is_magic_zero_then_big_endian_id(client: Any) -> None:
    registry = ConfluentRegistry(client)
    raw = AvroSerde("Exposure", framing="confluent", registry=registry).encode(_exposure().to_avro())
    schema_id = client.get_latest_version("io.abstream.Exposure").schema_id
    assert raw[0] == 0 and int.from_bytes(raw[1:5], "big") == schema_id
    assert Exposure.from_avro(AvroSerde("Exposure", registry=registry).decode(raw)).variant == "B"


def test_both_framings_decode_with_one_reader(client: Any) -> None:
    registry = ConfluentRegistry(client)
    record = _exposure().to_avro()
    confluent = AvroSerde("Exposure", framing="confluent", registry=registry).encode(record)
    single = AvroSerde("Exposure").encode(record)
    reader = AvroSerde("Exposure", registry=registry)
    assert reader.decode(confluent) == reader.decode(single) == record
    assert decode_any(confluent, registry=registry).writer is default_catalog().latest("Exposure")


def test_confluent_deserializer_reads_our_messages(client: Any) -> None:
    exposure = _exposure()
    raw = AvroSerde("Exposure", framing="confluent", registry=ConfluentRegistry(client)).encode(exposure.to_avro())
    theirs = AvroDeserializer(client)(raw, CONTEXT)
    assert UUID(str(theirs["event_id"])) == exposure.event_id
    assert theirs["client_ts"] == exposure.client_ts and theirs["context"] == {"platform": "ios"}


def test_we_read_the_confluent_serializers_messages(client: Any) -> None:
    version = default_catalog().latest("Exposure")
    serializer = AvroSerializer(
        client, json.dumps(version.schema), conf={"subject.name.strategy": record_subject_name_strategy}
    )
    exposure = _exposure()
    theirs = serializer(exposure.model_dump(mode="python") | {"client_ts": exposure.client_ts}, CONTEXT)
    assert Exposure.from_avro(AvroSerde("Exposure", registry=ConfluentRegistry(client)).decode(theirs)) == exposure


def test_ids_are_fetched_once(client: Any) -> None:
    registry = ConfluentRegistry(client)
    version = default_catalog().latest("Exposure")
    schema_id = registry.schema_id(version)
    client.delete_subject("io.abstream.Exposure")
    assert registry.schema_id(version) == schema_id
    assert registry.version(schema_id) is version


def test_unknown_ids_are_decode_errors(client: Any) -> None:
    raw = b"\x00\x00\x00\x03\xe7" + b"body"
    with pytest.raises(DecodeError, match="Schema Not Found") as caught:
        AvroSerde("Exposure", registry=ConfluentRegistry(client)).decode(raw)
    assert caught.value.kind == "unknown_schema_id" and caught.value.raw == raw


def test_registered_schemas_we_do_not_know_are_decode_errors(client: Any) -> None:
    foreign = {"type": "record", "name": "io.abstream.Exposure", "fields": [{"name": "x", "type": "int"}]}
    schema_id = client.register_schema("io.abstream.Exposure", Schema(json.dumps(foreign), "AVRO"))
    with pytest.raises(DecodeError, match="upgrade abstream") as caught:
        AvroSerde("Exposure", registry=ConfluentRegistry(client)).decode(
            b"\x00" + schema_id.to_bytes(4, "big") + b"\x02"
        )
    assert caught.value.kind == "unknown_schema_id"


def test_without_auto_register_writers_only_look_up(client: Any) -> None:
    registry = ConfluentRegistry(client, auto_register=False)
    version = default_catalog().latest("Event")
    with pytest.raises(UnknownSchemaError):
        registry.schema_id(version)
    ConfluentRegistry(client).schema_id(version)
    assert registry.schema_id(version) == client.get_latest_version("io.abstream.Event").schema_id


def test_a_registry_that_cannot_be_reached_is_not_a_bad_record() -> None:
    registry = ConfluentRegistry.connect("http://127.0.0.1:9", config={"max.retries": 0})
    with pytest.raises(RegistryError, match="unreachable"):
        AvroSerde("Exposure", registry=registry).decode(b"\x00\x00\x00\x00\x01")


def test_the_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka.schema_registry", None)
    with pytest.raises(ImportError, match=r"pip install 'abstream\[registry\]'"):
        ConfluentRegistry.connect("mock://x")
