"""The jobs' Faust producer (librdkafka underneath) on the real broker: placement, delivery, failure."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_jobs.app import Preflight, create_app
from stream_jobs.settings import JobsSettings

pytestmark = pytest.mark.integration


def _app(bootstrap: str, tmp_path: Path, **conf: float) -> object:
    settings = JobsSettings(kafka_bootstrap=bootstrap, data_dir=tmp_path, app_id=f"p-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, Preflight(partitions=6, brokers=1))
    for name, value in conf.items():
        setattr(app.conf, name, value)
    return app


def _read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    got: list[tuple[int, bytes, bytes]] = []
    try:
        for _ in range(100):
            got += [(m.partition(), m.key(), m.value()) for m in consumer.consume(1000, 0.2) if m.error() is None]
            if len(got) >= count:
                break
    finally:
        consumer.close()
    return got


def test_records_land_where_aiokafka_and_the_loggers_put_their_keys(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"placement-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
    app = _app(kafka_bootstrap, tmp_path)
    keys = [f"user-{i}".encode() for i in range(300)]

    async def send_all() -> list[int]:
        await app.producer.start()  # type: ignore[attr-defined]
        try:
            futures = [await app.producer.send(topic, k, b"v" + k, None, None, None) for k in keys]  # type: ignore[attr-defined]
            await app.producer.flush()  # type: ignore[attr-defined]
            return [(await f).partition for f in futures]  # type: ignore[misc]
        finally:
            await app.producer.stop()  # type: ignore[attr-defined]

    reported = asyncio.run(send_all())

    expected = [(murmur2(k) & 0x7FFFFFFF) % 6 for k in keys]
    assert reported == expected
    landed = {k: p for p, k, _ in _read(kafka_bootstrap, topic, len(keys))}
    assert landed == dict(zip(keys, expected, strict=True))


@pytest.mark.parametrize("method", ["send", "produce"])
def test_flush_raises_when_a_record_cannot_be_delivered(kafka_bootstrap: str, tmp_path: Path, method: str) -> None:
    """Faust flushes before it commits offsets: a lost record must stop the commit, never pass silently."""
    app = _app(kafka_bootstrap, tmp_path, producer_request_timeout=1.0)
    nowhere = f"missing-{uuid.uuid4().hex}"

    async def send_to_nowhere() -> None:
        await app.producer.start()  # type: ignore[attr-defined]
        try:
            if method == "send":
                await app.producer.send(nowhere, b"k", b"v", None, None, None)  # type: ignore[attr-defined]
            else:
                await app.producer.produce(nowhere, b"k", b"v")  # type: ignore[attr-defined]
            await app.producer.flush()  # type: ignore[attr-defined]
        finally:
            await app.producer.stop()  # type: ignore[attr-defined]

    with pytest.raises(KafkaException, match=r"Unknown topic|timed out"):
        asyncio.run(send_to_nowhere())
