"""The sink's consume-insert-commit loop: Kafka topics into ClickHouse detail tables, exactly once in effect.

Per partition, records are buffered and cut into batches by size or age (``sinks.batching``). A
batch is handled in this order, and the offset is committed last:

1. its range is written to the ledger (``sink_batches``) unless it is a recorded range replayed
   (the ranges of all batches cut in one pass go in one ledger insert);
2. its rows are inserted with ``insert_deduplication_token`` = range + digest, synchronously
   (``async_insert=0``), with ``deduplicate_blocks_in_dependent_materialized_views=1`` so the
   aggregate tables drop a repeated block too; the per-unit aggregates are brought up to date
   (``sinks.aggregates``: idempotent, whatever was replayed); then the ledger records the range as
   inserted;
3. its records that cannot be decoded or break the contract (``schemas.contract``: ``invalid_record``,
   naming the field and the rule) are delivered to the dead-letter topic, never inserted;
4. ``last_offset + 1`` is committed (``enable.auto.commit=false``).

A crash or rebalance anywhere before 4 makes the next owner read the same records again; the
ledger makes it cut the same range, the token makes ClickHouse drop the repeated insert. When a
step fails (ClickHouse or Kafka unavailable), the partition is paused and the same batch retried
with exponential backoff; the consumer keeps polling, so it stays in its group.

A replayed range the ledger records as inserted (under the same token) is not inserted again. That
is what covers replays older than ClickHouse's memory of tokens (the last 10,000 per table,
``non_replicated_deduplication_window``; a group reset weeks later), which would otherwise add the
aggregates' value sums twice; the token covers a crash between the insert and its ledger record.

    worker = SinkWorker(consumer=consumer, client=client, topics=sink_topics("abstream."), ...)
    worker.run(stop=stop_event)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from abstream.errors import DecodeError, SinkError
from schemas.contract import contract
from schemas.serde import AvroSerde
from sinks.aggregates import UnitAggregates
from sinks.batching import Batch, Entry, PartitionBuffer
from sinks.dead_letters import DeadLetterWriter
from sinks.ledger import BatchLedger
from sinks.tables import TableSpec

__all__ = ["INSERT_SETTINGS", "SinkStats", "SinkWorker"]

log = logging.getLogger(__name__)

INSERT_SETTINGS: Mapping[str, int] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "optimize_on_insert": 0,
}
"""Every sink insert: synchronous, deduplicated by token, down through the materialized views. Rows are
not collapsed on insert (``optimize_on_insert=0``), so until a merge each delivered record is one row:
the detail tables double as an audit of what was delivered, and a duplicate insert would show."""

_PARTITION_EOF = -191  # confluent_kafka.KafkaError._PARTITION_EOF, without importing it at module load


@dataclass
class SinkStats:
    """Counters for ``/healthz`` and for tests; written by the worker thread only."""

    records: int = 0
    rows_inserted: int = 0
    batches: int = 0
    replayed_batches: int = 0
    already_inserted: int = 0  # replayed batches whose rows the ledger says are in: not inserted again
    dead_letters: int = 0
    retries: int = 0
    idle: bool = False
    last_error: str | None = None


class SinkWorker:
    """Consumes the sink topics and writes them to ClickHouse; see the module docstring for the protocol."""

    def __init__(
        self,
        *,
        consumer: Any,
        client: Any,
        topics: Mapping[str, TableSpec],
        ledger: BatchLedger,
        dead_letters: DeadLetterWriter,
        max_rows: int = 5000,
        interval: float = 1.0,
        retry_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        after_insert: Callable[[Batch], None] | None = None,
        aggregates: UnitAggregates | None = None,
    ) -> None:
        self._consumer, self._client, self._topics = consumer, client, topics
        self._aggregates = aggregates
        self._ledger, self._dead_letters = ledger, dead_letters
        self._max_rows, self._interval, self._retry_max = max_rows, interval, retry_max
        self._clock, self._after_insert = clock, after_insert
        self._serdes = {spec.record: AvroSerde(spec.record) for spec in topics.values()}
        self._contracts = {spec.record: contract(spec.record) for spec in topics.values()}
        self._buffers: dict[tuple[str, int], PartitionBuffer] = {}
        self._assigned = False
        self.stats = SinkStats()

    def run(self, *, stop: threading.Event | None = None, stop_when_idle: bool = False) -> SinkStats:
        """Consume until ``stop`` is set (or, with ``stop_when_idle``, until caught up and committed)."""
        stop = stop or threading.Event()
        self._consumer.subscribe(
            list(self._topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        try:
            while not stop.is_set():
                self._poll()
                self._flush(self._clock(), force=False)
                self.stats.idle = self._idle()
                if stop_when_idle and self.stats.idle:
                    break
            self._flush(self._clock(), force=True)
        finally:
            self._consumer.close()
            self._dead_letters.close()
        return self.stats

    def _poll(self) -> None:
        timeout = min(0.25, self._interval / 4)
        messages = self._consumer.consume(num_messages=self._max_rows, timeout=timeout)
        now = self._clock()
        for message in messages:
            self._accept(message, now)

    def _accept(self, message: Any, now: float) -> None:
        buffer = self._buffers.get((message.topic(), message.partition()))
        error = message.error()
        if error is not None:
            self._on_error(error, buffer)
        elif buffer is not None:
            buffer.add(self._entry(message), now)
            self.stats.records += 1

    def _on_error(self, error: Any, buffer: PartitionBuffer | None) -> None:
        if error.code() == _PARTITION_EOF:
            if buffer is not None:
                buffer.at_end = True
            return
        if error.fatal():
            raise SinkError(f"the Kafka consumer failed: {error.str()}")
        self.stats.last_error = f"kafka: {error.str()}"
        log.warning("kafka: %s", error.str())

    def _entry(self, message: Any) -> Entry:
        spec = self._topics[message.topic()]
        offset, key, value = message.offset(), message.key(), message.value()
        if value is None and spec.skip_tombstones:
            return Entry(offset, key, value, None, None)
        origin = {"topic": message.topic(), "partition": message.partition(), "offset": offset}
        try:
            record = self._serdes[spec.record].decode(value or b"", **origin)
            if (violation := self._contracts[spec.record].check(record)) is not None:
                raise DecodeError(violation.message, raw=value or b"", kind="invalid_record", **origin)
            return Entry(offset, key, value, spec.row(record, message.partition(), offset), None)
        except DecodeError as exc:
            return Entry(offset, key, value, None, exc)
        except (ValueError, TypeError, KeyError) as exc:
            invalid = DecodeError(f"{spec.record}: {exc}", raw=value or b"", kind="invalid_value", **origin)
            return Entry(offset, key, value, None, invalid)

    def _flush(self, now: float, *, force: bool) -> None:
        """Cut the due batches, record the new ranges in one ledger insert, then write each batch."""
        cut = [(buffer, self._cut(buffer, now, force)) for buffer in list(self._buffers.values())]
        ready = [(buffer, batch) for buffer, batch in cut if batch is not None]
        fresh = [(buffer, batch) for buffer, batch in ready if not batch.planned]
        if fresh and not self._record(fresh, now, force):
            ready = [(buffer, batch) for buffer, batch in ready if batch.planned]
        for buffer, batch in ready:
            self._write(buffer, batch, now, force)

    def _cut(self, buffer: PartitionBuffer, now: float, force: bool) -> Batch | None:
        if not (force or buffer.due(now, max_rows=self._max_rows, interval=self._interval)):
            return None
        try:
            if buffer.needs_plans():
                plans, complete = self._ledger.plans(buffer.topic, buffer.partition, buffer.entries[0].offset)
                buffer.load_plans(plans, complete=complete)
        except Exception as exc:
            self._failed(buffer, now, exc, force)
            return None
        batch = buffer.next_batch(self._max_rows)
        if batch is None and buffer.failures:  # a replayed range waits for records: fetch them
            self._recovered(buffer)
        return batch

    def _record(self, fresh: list[tuple[PartitionBuffer, Batch]], now: float, force: bool) -> bool:
        try:
            self._ledger.record([batch for _, batch in fresh])
        except Exception as exc:
            for buffer, _ in fresh:
                self._failed(buffer, now, exc, force)
            return False
        for buffer, batch in fresh:
            buffer.remember(batch)
        return True

    def _write(self, buffer: PartitionBuffer, batch: Batch, now: float, force: bool) -> None:
        try:
            rows = [] if batch.already_inserted else batch.rows
            spec = self._topics[batch.topic]
            if rows:
                settings = {**INSERT_SETTINGS, "insert_deduplication_token": batch.token}
                self._client.insert(spec.table, rows, column_names=spec.insert_columns, settings=settings)
            if self._after_insert is not None:
                self._after_insert(batch)
            if rows and self._aggregates is not None:
                self._aggregates.after_insert(spec.table, rows, token=batch.token)
            if rows:
                self._ledger.record_inserted(batch)
            self._dead_letters.send(batch.topic, batch.partition, batch.dead)
            self._commit(batch)
        except Exception as exc:
            self._failed(buffer, now, exc, force)
            return
        self._count(batch, len(rows))
        failing = buffer.failures > 0
        buffer.drop_through(batch.last_offset, self._clock())
        if failing:
            self._resume(buffer)

    def _commit(self, batch: Batch) -> None:
        from confluent_kafka import TopicPartition

        offsets = [TopicPartition(batch.topic, batch.partition, batch.last_offset + 1)]
        self._consumer.commit(offsets=offsets, asynchronous=False)

    def _count(self, batch: Batch, rows: int) -> None:
        self.stats.batches += 1
        self.stats.replayed_batches += batch.planned
        self.stats.already_inserted += batch.already_inserted
        self.stats.rows_inserted += rows
        self.stats.dead_letters += len(batch.dead)
        if batch.dead:
            log.warning(
                "sink: %d unreadable or invalid record(s) from %s sent to dead letters", len(batch.dead), batch.topic
            )

    def _failed(self, buffer: PartitionBuffer, now: float, exc: Exception, force: bool) -> None:
        """Back off and pause the partition; at shutdown (``force``) just say what was left unflushed."""
        if force:
            log.warning("sink: %s[%d] not flushed at shutdown: %s", buffer.topic, buffer.partition, exc)
            return
        from confluent_kafka import TopicPartition

        delay = min(self._retry_max, 0.2 * 2 ** min(buffer.failures, 32))  # 2**1024 overflows a float
        buffer.failures += 1
        buffer.retry_at = now + delay
        self.stats.retries += 1
        self.stats.last_error = f"{type(exc).__name__}: {str(exc)[:500]}"
        log.warning("sink: %s[%d] retry in %.1f s: %s", buffer.topic, buffer.partition, delay, self.stats.last_error)
        self._consumer.pause([TopicPartition(buffer.topic, buffer.partition)])

    def _recovered(self, buffer: PartitionBuffer) -> None:
        buffer.failures, buffer.retry_at = 0, 0.0
        self._resume(buffer)

    def _resume(self, buffer: PartitionBuffer) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.resume([TopicPartition(buffer.topic, buffer.partition)])

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._buffers[(tp.topic, tp.partition)] = PartitionBuffer(tp.topic, tp.partition)
        self._assigned = True

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        # Uncommitted records are dropped: the next owner reads them again and the ledger re-forms
        # any batch already inserted, so nothing is lost or counted twice.
        for tp in partitions:
            self._buffers.pop((tp.topic, tp.partition), None)

    def _idle(self) -> bool:
        buffers = self._buffers.values()
        return self._assigned and all(b.at_end and not b.entries for b in buffers)
