"""Reading the dead-letter topic and re-injecting its records (the ``abstream deadletters`` commands)."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from abstream.errors import DecodeError, InvalidRecordError, KafkaSetupError
from schemas.serde import AvroSerde

__all__ = ["read_dead_letters", "replay_dead_letters", "unit_key"]

_KEYED_RECORDS = ("Exposure", "Event")  # the inputs the jobs key by unit id


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


def unit_key(letter: dict[str, Any]) -> bytes:
    """The key a dead letter's record should have had: its unit id (what fixes a ``wrong_key`` letter)."""
    for record in _KEYED_RECORDS:
        try:
            return str(AvroSerde(record).decode(letter["raw"])["unit_id"]).encode()
        except DecodeError:
            continue
    where = f"{letter['source_topic']}[{letter['source_partition']}]@{letter['source_offset']}"
    raise InvalidRecordError(
        f"dead letter from {where} ({letter['error_kind']}): its bytes are no Exposure or Event, "
        "so it has no unit id to be keyed by; replay it without --rekey"
    )


def replay_dead_letters(bootstrap: str, letters: list[dict[str, Any]], *, rekey: bool = False) -> int:
    """Produce each dead letter's raw bytes back to its source topic, with its key (``rekey``: keyed by
    its unit id instead, so it lands in its unit's partition); returns how many."""
    keys = [unit_key(letter) if rekey else letter["key"] for letter in letters]  # every key known before any send
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random"}
    )
    for letter, key in zip(letters, keys, strict=True):
        producer.produce(letter["source_topic"], letter["raw"], key)
    if producer.flush(30) != 0:
        raise KafkaSetupError(
            "some dead letters could not be re-injected within 30 s; nothing was lost, run replay again"
        )
    return len(letters)
