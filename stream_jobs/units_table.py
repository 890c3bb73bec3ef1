"""The ``units`` table: Faust's RocksDB table, its changelog records produced straight through librdkafka.

A Faust table write sends its changelog record through the generic path (a FutureMessage, Faust's send
buffer, a delivery future and its callbacks) and then writes the changelog offset to RocksDB, for every
single write: profiled, that path cost as much as the jobs' own work. Here a write hands the record to
librdkafka at once, delivery reports only keep the highest changelog offset per partition, and
``persist_offsets`` writes those to the store once per batch. The changelog topic, its records and
recovery are Faust's, unchanged; a persisted offset that lags only means a longer replay of the
changelog at recovery (the writes are idempotent).
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TP

from stream_jobs.producer import LibrdkafkaProducer

__all__ = ["UnitsTable"]


class UnitsTable(faust.Table):
    """A ``bytes`` → ``bytes`` table without TTLs or windows (what the jobs need, and all this supports)."""

    def __init__(self, app: faust.App, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._delivered: dict[int, int] = {}  # changelog partition -> highest offset acknowledged

    def on_key_set(self, key: Any, value: Any) -> None:
        self._produce(key, value)

    def on_key_del(self, key: Any) -> None:
        self._produce(key, None)

    def _produce(self, key: bytes, value: bytes | None) -> None:
        producer = cast(LibrdkafkaProducer, self.app.producer)
        partition = self.partition_for_key(key)  # the current record's: co-partitioned with its source
        assert partition is not None
        producer.produce_now(self.changelog_topic_name, key, value, partition, self._on_delivery)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if cast(LibrdkafkaProducer, self.app.producer).check_delivery(err, msg) is None:
            partition, offset = msg.partition(), msg.offset()
            if offset > self._delivered.get(partition, -1):
                self._delivered[partition] = offset

    def persist_offsets(self) -> None:
        """Record in the store how far its changelog partitions are written (Faust reads it at recovery)."""
        delivered, self._delivered = self._delivered, {}
        for partition, offset in delivered.items():
            self.data.set_persisted_offset(TP(self.changelog_topic_name, partition), offset)
