"""What an operator does to a consumer group: read how far behind it is, reset it to the start of its topics.

    behind = group_lag(bootstrap, "abstream-jobs", ["abstream.exposures", "abstream.events"])
    reset_to_earliest(bootstrap, "abstream-jobs", ["abstream.exposures", "abstream.events"])   # group stopped

The lag is read with ``Consumer.committed()`` from a consumer of the group that never subscribes (it joins
nothing): ``AdminClient.list_consumer_group_offsets`` crashed librdkafka in parsing its response here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

__all__ = ["group_lag", "reset_to_earliest"]


def group_lag(bootstrap: str, group: str, topics: Sequence[str], *, timeout: float = 10.0) -> int | None:
    """Records on ``topics`` past the group's committed offsets (none committed: from 0); None if unknown now."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "log_level": 0})
    try:
        partitions = [
            TopicPartition(name, p)
            for name in topics
            for p in reader.list_topics(name, timeout=timeout).topics[name].partitions
        ]
        committed = reader.committed(partitions, timeout=timeout)
        lag = 0
        for tp in committed:
            end = reader.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)[1]
            lag += end - max(tp.offset, 0)
        return lag
    except KafkaException:  # the coordinator is moving or loading, a broker is down: ask again later
        return None
    finally:
        reader.close()


def reset_to_earliest(bootstrap: str, group: str, topics: Sequence[str], *, timeout: float = 60.0) -> None:
    """Commit offset 0 on every partition of ``topics`` for ``group``, whose members must have stopped.

    Retries while the group is not empty yet (its last member may take a moment to leave).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=10).topics
    partitions = [TopicPartition(name, p, 0) for name in topics for p in metadata[name].partitions]
    request = ConsumerGroupTopicPartitions(group, partitions)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.alter_consumer_group_offsets([request])[group].result()
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
