"""One contract at every edge: an out-of-contract value is refused by the logger, the collector, the jobs, the sink.

The logger raises naming the field; the collector answers with a per-record error on that field; the jobs'
check dead-letters the decoded record as ``invalid_record`` and the sink dead-letters its output record
the same way, both with the same ``field: rule`` in the message. A valid record passes every edge.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from abstream.errors import InvalidRecordError
from producers.collector.app import make_app
from producers.collector.settings import CollectorSettings
from producers.logger import ExposureLogger
from schemas.contract import TIMESTAMP_MILLIS
from schemas.serde import AvroSerde
from sinks.tables import TABLES
from sinks.worker import SinkWorker
from stream_jobs.dead_letters import rejection
from tests.unit.sinks.test_worker import FakeClickHouse, FakeConsumer, FakeLedger

UNIT = "u-1"
UUID_ = "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1"
SOURCE = {"sdk": "web", "sdk_version": "1", "app": None, "host": None}
EXPOSURE = {
    "event_id": UUID_, "experiment": "moon_mars", "revision": 1, "variant": "Moon", "unit_type": "device_id",
    "unit_id": UNIT, "scheme": "sha256-weights", "hash_seed": None, "hash_version": None, "bucket_position": None,
    "bucket_index": None, "params": {}, "hash_used": True, "sticky_bucket_used": False, "forced": False,
    "source": SOURCE, "client_ts": 1_767_225_600_000, "received_ts": None, "context": {}, "sampling_rate": 1.0,
}  # fmt: skip
EVENT = {
    "event_id": UUID_, "unit_type": "device_id", "unit_id": UNIT, "name": "button_click", "value": 1.0,
    "ts": 1_767_225_600_000, "received_ts": None, "properties": {}, "source": SOURCE,
}  # fmt: skip
# What the sink reads, built from the input record as the jobs build it.
OUTPUTS = {
    "Exposure": ("first_exposures", lambda r: {**r, "duplicates": 0}),
    "Event": ("unattributed_events", lambda r: {**r, "reason": "never_exposed"}),
}
RULE = {
    "sampling_rate": "must be > 0 and <= 1",
    "revision": "must be >= 0 and < 2147483648",
    "bucket_position": "must be >= 0 and < 1",
    "hash_version": "must be >= 1 and < 2147483648",
    "bucket_index": "must be >= 0 and < 9223372036854775808",
    "event_id": "must be a valid UUID",
    "ts": "epoch milliseconds must be within the years 1 to 9999",
}
_FUTURE = TIMESTAMP_MILLIS.stop  # the year 10000

# (record, field, value): every rule of the two input records broken at least once.
CASES = [
    ("Exposure", "sampling_rate", 5.0),
    ("Exposure", "sampling_rate", 0.0),
    ("Exposure", "sampling_rate", -1.0),
    ("Exposure", "revision", -1),
    ("Exposure", "bucket_position", 1.5),
    ("Exposure", "bucket_position", -0.5),
    ("Exposure", "hash_version", 0),
    ("Exposure", "bucket_index", -1),
    ("Exposure", "event_id", "not-a-uuid"),
    ("Exposure", "event_id", ""),
    ("Exposure", "experiment", ""),
    ("Exposure", "variant", ""),
    ("Exposure", "unit_type", ""),
    ("Exposure", "unit_id", ""),
    ("Exposure", "scheme", ""),
    ("Exposure", "client_ts", _FUTURE),
    ("Exposure", "received_ts", _FUTURE),
    ("Event", "event_id", "12345"),
    ("Event", "unit_type", ""),
    ("Event", "unit_id", ""),
    ("Event", "name", ""),
    ("Event", "ts", _FUTURE),
]
COLLECTED = [case for case in CASES if case[1] != "received_ts"]  # received_ts is the collector's own to set


def _id(case: tuple[str, str, object]) -> str:
    return f"{case[0]}.{case[1]}={case[2]!r}"


def _rule(field: str) -> str:
    if field.endswith("_ts"):
        return RULE["ts"]
    return RULE.get(field, "must be a non-empty string")


def _record(record: str, field: str | None = None, value: object = None) -> dict[str, Any]:
    base = EXPOSURE if record == "Exposure" else EVENT
    return base if field is None else {**base, field: value}


# -- the edges -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logger(tmp_path_factory: pytest.TempPathFactory):
    # librdkafka connects lazily; nothing listens on port 1: accepted records only wait in memory.
    spool = tmp_path_factory.mktemp("spool")
    with ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=spool, close_timeout=0.1) as lg:
        yield lg


def _log(logger: ExposureLogger, record: str, fields: dict[str, Any]) -> str:
    """The record through the logger, as an app passes it (with the logger's own source)."""
    kwargs = {k: v for k, v in fields.items() if k != "source"}
    if record == "Exposure":
        return logger.log_exposure(**kwargs)
    return logger.log_event(**kwargs)


def _collect(logger: ExposureLogger, record: str, fields: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/batch with this one record; the collector's JSON answer."""
    sent = {k: v for k, v in fields.items() if k != "received_ts"}  # the collector's to set

    async def post() -> dict[str, Any]:
        app = make_app(CollectorSettings(tokens=["k"]), logger)
        async with TestClient(TestServer(app)) as client:
            key = "exposures" if record == "Exposure" else "events"
            reply = await client.post("/v1/batch", json={key: [sent]}, headers={"Authorization": "Bearer k"})
            assert reply.status == 200
            return dict(await reply.json())

    return asyncio.run(post())


def _jobs(record: str, fields: dict[str, Any], key: bytes | None = UNIT.encode()) -> tuple[str, str] | None:
    """What the jobs decide for the record read from its input topic: None (applied) or (kind, message)."""
    serde = AvroSerde(record)
    return rejection(record, serde.decode(serde.encode(fields)), key)


class _DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, topic: str, partition: int, entries: list[Any]) -> None:
        self.sent += [(e.error.kind, str(e.error)) for e in entries]

    def close(self) -> None:
        pass


def _sink(record: str, fields: dict[str, Any], **output: object) -> tuple[int, list[tuple[str, str]]]:
    """The sink fed the output record the jobs would write for it (``output``: its own fields changed).

    Returns (rows inserted, dead letters as (kind, message)).
    """
    role, build = OUTPUTS[record]
    spec = TABLES[role]
    events: list[str] = []
    client, letters = FakeClickHouse(events), _DeadLetters()
    consumer = FakeConsumer({"p.out": [AvroSerde(spec.record).encode({**build(fields), **output})]}, {}, events)
    worker = SinkWorker(
        consumer=consumer, client=client, topics={"p.out": spec}, ledger=FakeLedger(events),
        dead_letters=letters, interval=0.0, retry_max=0.01,
    )  # fmt: skip
    worker.run(stop_when_idle=True)
    return client.rows, letters.sent


# -- the table, through every edge ---------------------------------------------------------------


@pytest.mark.parametrize(("record", "field", "value"), CASES, ids=map(_id, CASES))
def test_the_logger_refuses_it_naming_the_field(logger: ExposureLogger, record: str, field: str, value: object) -> None:
    with pytest.raises(InvalidRecordError) as refused:
        _log(logger, record, _record(record, field, value))

    assert refused.value.field == field
    assert f"{record}.{field}: " in str(refused.value)


@pytest.mark.parametrize(("record", "field", "value"), COLLECTED, ids=map(_id, COLLECTED))
def test_the_collector_rejects_it_with_a_per_record_error(
    logger: ExposureLogger, record: str, field: str, value: object
) -> None:
    answer = _collect(logger, record, _record(record, field, value))

    assert answer["accepted"] == 0
    [rejected] = answer["rejected"]
    assert rejected["index"] == 0 and rejected["kind"] == record.lower()
    assert [e["field"] for e in rejected["errors"]] == [field]
    assert _rule(field) in rejected["errors"][0]["message"]


@pytest.mark.parametrize(("record", "field", "value"), CASES, ids=map(_id, CASES))
def test_the_jobs_dead_letter_it_as_invalid_record_with_the_field_and_the_rule(
    record: str, field: str, value: object
) -> None:
    key = str(value).encode() if field == "unit_id" else UNIT.encode()
    decided = _jobs(record, _record(record, field, value), key)

    assert decided is not None
    kind, message = decided
    assert kind == "invalid_record"
    assert message.startswith(f"{record}.{field}: {_rule(field)}")


@pytest.mark.parametrize(("record", "field", "value"), CASES, ids=map(_id, CASES))
def test_the_sink_dead_letters_it_as_invalid_record_with_the_field_and_the_rule(
    record: str, field: str, value: object
) -> None:
    rows, letters = _sink(record, _record(record, field, value))

    assert rows == 0
    [(kind, message)] = letters
    assert kind == "invalid_record"
    assert f".{field}: {_rule(field)}" in message


def test_the_sink_dead_letters_negative_duplicates() -> None:
    rows, letters = _sink("Exposure", EXPOSURE, duplicates=-1)

    assert rows == 0
    assert letters == [("invalid_record", f"FirstExposure.duplicates: {RULE['bucket_index']} (got -1)")]


@pytest.mark.parametrize("record", ["Exposure", "Event"])
def test_a_valid_record_passes_every_edge(logger: ExposureLogger, record: str) -> None:
    fields = _record(record)

    assert _log(logger, record, fields)
    answer = _collect(logger, record, fields)
    assert (answer["accepted"], answer["rejected"]) == (1, [])
    assert _jobs(record, fields) is None
    assert _sink(record, fields) == (1, [])


@pytest.mark.parametrize("key", [None, b"u-2", b""], ids=["null", "another unit", "empty"])
@pytest.mark.parametrize("record", ["Exposure", "Event"])
def test_the_jobs_dead_letter_a_null_or_wrong_key_as_wrong_key(record: str, key: bytes | None) -> None:
    decided = _jobs(record, _record(record), key=key)

    assert decided is not None
    kind, message = decided
    assert kind == "wrong_key"
    assert f"key {key!r} is not the unit id 'u-1'" in message


def test_a_record_that_breaks_the_contract_is_invalid_before_its_key_is_looked_at() -> None:
    assert _jobs("Exposure", _record("Exposure", "sampling_rate", 5.0), key=None) == (
        "invalid_record",
        "Exposure.sampling_rate: must be > 0 and <= 1 (got 5.0)",
    )
