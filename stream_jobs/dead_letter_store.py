"""Reading the dead-letter topic and re-injecting its records (the ``abstream deadletters`` commands)."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from abstream.errors import KafkaSetupError
from schemas.serde import AvroSerde

__all__ = ["read_dead_letters", "replay_dead_letters"]


def read_dead_letters(bootstrap: str, topic: str, *, limit: int, timeout: float) -> list[tuple[int, dict[str, Any]]]:
    """Up to ``limit`` dead letters, oldest first, as (offset in the dead-letter topic, record)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"abstream-dl-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaSetupError(f"no dead-letter topic {topic!r}: run `abstream topics create`")
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in meta.partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        return _drain(consumer, ends, limit, timeout)
    finally:
        consumer.close()


def _drain(consumer: Consumer, ends: dict[int, int], limit: int, timeout: float) -> list[tuple[int, dict[str, Any]]]:
    serde, rows = AvroSerde("DeadLetter"), list[tuple[int, dict[str, Any]]]()
    done = {p for p, end in ends.items() if end == 0}
    while len(done) < len(ends) and len(rows) < limit:
        msg = consumer.poll(timeout)
        if msg is None:
            break
        offset, partition, raw = msg.offset(), msg.partition(), msg.value()
        if msg.error() is not None or offset is None or partition is None or raw is None:
            continue
        rows.append((offset, serde.decode(raw, topic=msg.topic(), partition=partition, offset=offset)))
        if offset + 1 >= ends[partition]:
            done.add(partition)
    return rows[:limit]


def replay_dead_letters(bootstrap: str, letters: list[dict[str, Any]]) -> int:
    """Produce each dead letter's raw bytes, with its key, back to its source topic; returns how many."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random"}
    )
    for letter in letters:
        producer.produce(letter["source_topic"], letter["raw"], letter["key"])
    if producer.flush(30) != 0:
        raise KafkaSetupError(
            "some dead letters could not be re-injected within 30 s; nothing was lost, run replay again"
        )
    return len(letters)
