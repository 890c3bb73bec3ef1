"""Caller-side validation: a bad argument raises at once, naming the field; ids are real UUIDv4s."""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from abstream.errors import ConfigError, InvalidRecordError
from producers.logger import ExposureLogger, LoggerClosedError, Source
from producers.records import new_event_id, to_millis
from producers.spool import Spool
from schemas.contract import contract
from schemas.serde import AvroSerde
from tests.unit.schemas.test_contract import EDGES


def test_event_ids_are_unique_version_4_uuids() -> None:
    ids = [new_event_id() for _ in range(20_000)]

    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {4}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True))


def test_a_forked_child_draws_fresh_ids() -> None:
    new_event_id()  # fill the parent's pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()

    assert child_id != new_event_id()


def test_timestamps_accept_millis_and_aware_datetimes_only() -> None:
    assert to_millis("E", "ts", 1_700_000_000_000) == 1_700_000_000_000
    assert to_millis("E", "ts", datetime(2026, 1, 1, tzinfo=UTC)) == 1_767_225_600_000
    with pytest.raises(InvalidRecordError, match=r"E\.ts: .*timezone-aware"):
        to_millis("E", "ts", datetime(2026, 1, 1))


@pytest.fixture
def logger(tmp_path: Path):
    # librdkafka connects lazily; nothing listens on port 1 and nothing here needs a broker.
    with ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, close_timeout=0.1) as lg:
        yield lg


GOOD = {"experiment": "checkout", "variant": "B", "unit_id": "u1", "revision": 3}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"experiment": ""}, "experiment"),
        ({"variant": None}, "variant"),
        ({"unit_id": 42}, "unit_id"),
        ({"revision": "3"}, "revision"),
        ({"revision": -1}, "revision"),
        ({"revision": 2**31}, "revision"),
        ({"hash_version": 2**40}, "hash_version"),
        ({"bucket_index": 2**64}, "bucket_index"),
        ({"sampling_rate": 0}, "sampling_rate"),
        ({"bucket_position": float("nan")}, "bucket_position"),
        ({"hash_version": 1.5}, "hash_version"),
        ({"params": {"k": None}}, "params"),
        ({"context": {1: "x"}}, "context"),
        ({"client_ts": "yesterday"}, "client_ts"),
        ({"event_id": ""}, "event_id"),
        ({"received_ts": "just now"}, "received_ts"),
        ({"received_ts": -1}, "received_ts"),
        ({"received_ts": 1 << 63}, "received_ts"),
        ({"received_ts": datetime(2026, 1, 1)}, "received_ts"),
        ({"source": {"sdk": "web"}}, "source"),
    ],
)
def test_invalid_exposures_name_the_field(logger: ExposureLogger, change: dict, field: str) -> None:
    with pytest.raises(InvalidRecordError) as info:
        logger.log_exposure(**{**GOOD, **change})

    assert info.value.field == field
    assert f"Exposure.{field}" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert logger.wait_handed_off(1) and logger.stats.spooled == 0


def test_invalid_events_name_the_field(logger: ExposureLogger) -> None:
    with pytest.raises(InvalidRecordError, match=r"Event\.value") as info:
        logger.log_event(unit_id="u1", name="purchase", value="19.99")  # type: ignore[arg-type]

    assert info.value.field == "value"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"received_ts": 1.5}, "received_ts"), ({"received_ts": "now"}, "received_ts"), ({"source": "web"}, "source")],
)
def test_invalid_server_side_event_fields_name_the_field(logger: ExposureLogger, change: dict, field: str) -> None:
    with pytest.raises(InvalidRecordError) as info:
        logger.log_event(unit_id="u1", name="purchase", **change)

    assert info.value.field == field
    assert f"Event.{field}" in str(info.value)
    assert logger.wait_handed_off(1) and logger.stats.spooled == 0


def test_a_source_field_that_is_not_a_string_is_refused_at_once() -> None:
    with pytest.raises(InvalidRecordError, match=r"Source\.app: expected a string or None") as info:
        Source(app=42)  # type: ignore[arg-type]

    assert info.value.field == "source.app"


def test_logging_after_close_is_an_error(tmp_path: Path) -> None:
    logger = ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, close_timeout=0.1)
    logger.close()

    with pytest.raises(LoggerClosedError):
        logger.log_exposure(**GOOD)


def test_an_unknown_producer_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lingerr\.ms"):
        ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, producer_config={"lingerr.ms": 5})


def test_close_spools_what_kafka_did_not_take(tmp_path: Path) -> None:
    logger = ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, close_timeout=0.5)
    for i in range(50):
        logger.log_exposure(**{**GOOD, "unit_id": f"u{i}"})
    logger.close()

    assert logger.stats.spooled == 50
    assert logger.stats.failed == 0


def _spooled(directory: Path) -> dict[str, dict]:
    """The records a closed logger left in its spool, by event id: the bytes it would have sent to Kafka."""
    return {r["event_id"]: r for r in _spooled_records(directory, 100)}


def _spooled_records(directory: Path, limit: int) -> list[dict]:
    serdes = {"abstream.exposures": AvroSerde("Exposure"), "abstream.events": AvroSerde("Event")}
    with Spool(directory) as spool:
        return [serdes[r.topic].decode(r.value) for r in spool.read(limit)]


def test_received_ts_and_a_per_call_source_go_into_the_record(tmp_path: Path) -> None:
    client = Source(sdk="web-sdk", sdk_version="2.1.0", app=None, host=None)
    received = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    logger = ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, close_timeout=0.1)
    ids = [
        logger.log_exposure(**GOOD, received_ts=received, source=client),
        logger.log_exposure(**GOOD, received_ts=1_767_225_600_500),
        logger.log_exposure(**GOOD),
        logger.log_event(unit_id="u1", name="click", ts=1_767_225_600_000, received_ts=received, source=client),
        logger.log_event(unit_id="u1", name="click"),
    ]
    logger.close()

    spooled = _spooled(tmp_path)
    records = [spooled[i] for i in ids]
    own = logger.source.as_record()
    assert own["sdk"] == "abstream" and own["host"]  # the logger's host is filled in; a caller's is not
    assert [r["received_ts"] for r in records] == [1_767_225_601_000, 1_767_225_600_500, None, 1_767_225_601_000, None]
    assert [r["source"] for r in records] == [client.as_record(), own, own, client.as_record(), own]
    assert records[3]["ts"] == 1_767_225_600_000


_OPTIONAL_EXPOSURE = {
    "unit_type": "user_id", "scheme": "growthbook", "hash_seed": "s", "hash_version": 1, "bucket_position": 0.5,
    "bucket_index": 3, "params": {"k": "v"}, "context": {"k": "v"}, "hash_used": False, "sticky_bucket_used": True,
    "forced": True, "sampling_rate": 0.5, "client_ts": 1_767_225_600_000,
    "event_id": "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1", "received_ts": 1_767_225_600_000,
}  # fmt: skip
_OPTIONAL_EVENT = {
    "unit_type": "user_id", "value": 1.5, "properties": {"k": "v"}, "ts": 1_767_225_600_000,
    "event_id": "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1", "received_ts": 1_767_225_600_000,
}  # fmt: skip


def _calls(rng: random.Random, required: dict, optional: dict, n: int) -> list[dict]:
    """Calls with a few arguments set, each one now and then replaced by a value from the contract's edges."""
    calls = []
    for _ in range(n):
        kwargs = {**required, **dict(rng.sample(sorted(optional.items()), rng.randrange(len(optional))))}
        for name in rng.sample(sorted(kwargs), rng.choice([0, 0, 1, 1, 2])):
            kwargs[name] = rng.choice(EDGES)
        calls.append(kwargs)
    return calls


def test_whatever_the_logger_accepts_keeps_the_contract(tmp_path: Path) -> None:
    """The logger's shortcut checks accept nothing the contract (what the jobs apply) refuses."""
    rng = random.Random(12)
    logger = ExposureLogger(bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, close_timeout=0.1)
    accepted = refused = 0
    for log, calls in (
        (logger.log_exposure, _calls(rng, GOOD, _OPTIONAL_EXPOSURE, 3000)),
        (logger.log_event, _calls(rng, {"unit_id": "u1", "name": "click"}, _OPTIONAL_EVENT, 2000)),
    ):
        for kwargs in calls:
            try:
                log(**kwargs)
                accepted += 1
            except InvalidRecordError:
                refused += 1
    logger.close()
    spooled = _spooled_records(tmp_path, accepted + 1)

    assert len(spooled) == accepted and accepted > 1000 and refused > 1000
    for record in spooled:
        assert contract("Event" if "name" in record else "Exposure").check(record) is None, record
