"""The real broker: a produce/consume round trip and the declared topics."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.topics import TopicSpec, create_topics, describe_topics

pytestmark = pytest.mark.integration


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got, waited = [], 0.0
    try:
        while len(got) < expected and waited < timeout:
            msg = consumer.poll(0.5)
            waited += 0.5 if msg is None else 0
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got


def test_round_trip_keeps_every_record_and_key_partitioning(kafka_bootstrap: str, topic_prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = f"{topic_prefix}roundtrip"
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True})
    sent = {f"value-{i}".encode(): f"unit-{i % 7}".encode() for i in range(200)}
    for value, key in sent.items():
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0

    got = consume_all(kafka_bootstrap, topic, expected=len(sent))

    assert {m.value(): m.key() for m in got} == sent
    partitions_per_key: dict[bytes, set[int]] = {}
    for m in got:
        partitions_per_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions_per_key.values())


def test_topics_are_created_as_declared_and_never_altered(kafka_bootstrap: str, topic_prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    spec = TopicSpec.load()
    topics = spec.resolve(prefix=topic_prefix, brokers=1)

    first = create_topics(admin, topics)
    second = create_topics(admin, topics)

    assert {r.status for r in first} == {"created"}
    assert {r.status for r in second} == {"exists"}
    described = describe_topics(admin, [t.name for t in topics])
    for topic in topics:
        partitions, configs = described[topic.name]
        assert partitions == topic.partitions
        assert {k: configs.get(k) for k in topic.config} == dict(topic.config)
    by_role = {t.role: described[t.name] for t in topics}
    assert by_role["experiment_definitions"][1]["cleanup.policy"] == "compact"
    assert by_role["exposures"][0] == by_role["events"][0] == by_role["first_exposures"][0] == 6


def test_topics_cli_reports_a_topic_that_differs(kafka_bootstrap: str, topic_prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    wrong = f"{topic_prefix}exposures"
    admin.create_topics([NewTopic(wrong, 2, 1)])[wrong].result(timeout=30)
    env = {
        **os.environ,
        "ABSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ABSTREAM_TOPIC_PREFIX": topic_prefix,
        "COLUMNS": "200",
    }

    result = subprocess.run(
        [sys.executable, "-m", "abstream", "topics", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "differs" in result.stdout and "partitions 2 (spec 6)" in result.stdout
    assert describe_topics(admin, [wrong])[wrong][0] == 2  # left as it was
