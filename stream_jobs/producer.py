"""Faust's producer, sending through librdkafka (confluent-kafka) instead of aiokafka.

aiokafka builds and sends its requests in Python on the event loop: profiled, that was the largest
single cost of the jobs. librdkafka batches, compresses and sends on its own threads, with the loggers'
settings (acks=all, idempotence, lz4, the murmur2 partitioner that keeps co-partitioning). Three ways in:
``send()`` keeps Faust's contract (a future resolved on delivery) for whatever Faust sends itself;
``produce()`` is for the jobs' outputs, which nobody awaits; ``produce_now()`` is for synchronous code
(the ``units`` table's changelog, ``stream_jobs.units_table``). ``flush()``, which Faust awaits before
committing offsets, returns once every record is acknowledged, and raises after one was lost: a record
that cannot be delivered crashes the worker before its offset is committed. Admin calls (creating the
changelog topic) still go through the aiokafka producer this one extends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import confluent_kafka
from faust.transport.drivers.aiokafka import Producer as AIOKafkaDriverProducer
from faust.types import TP, HeadersArg, RecordMetadata
from mode import Service

__all__ = ["LibrdkafkaProducer"]

log = logging.getLogger("abstream.stream_jobs")

_POLL_INTERVAL_S = 0.002  # how soon a delivery report reaches its future
_STOP_DRAIN_S = 30.0


class LibrdkafkaProducer(AIOKafkaDriverProducer):
    """A Faust producer whose sends go through a ``confluent_kafka.Producer``."""

    _rdkafka: confluent_kafka.Producer | None = None
    _failure: BaseException | None = None
    _crashing: asyncio.Future[None] | None = None

    def _rdkafka_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": ",".join(f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker),
            "client.id": self.client_id,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": self.linger_ms,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
            "message.timeout.ms": int(self.request_timeout * 1000),
        }

    async def on_start(self) -> None:
        await super().on_start()
        self._rdkafka = confluent_kafka.Producer(self._rdkafka_config())

    async def on_stop(self) -> None:
        # Bounded: records not delivered by then are not lost, their offsets were never committed.
        if (pending := await self._drain(timeout=_STOP_DRAIN_S)) > 0:
            log.warning("stopping with %d record(s) undelivered: they are produced again after a restart", pending)
        self._rdkafka = None
        await super().on_stop()

    @Service.task
    async def _delivery_reports(self) -> None:
        """Serve delivery reports on the event loop, where their futures live."""
        while not self.should_stop:
            if self._rdkafka is not None:
                self._rdkafka.poll(0)
            await asyncio.sleep(_POLL_INTERVAL_S)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Hand the record to librdkafka; the future resolves when the broker has acknowledged it."""
        delivered = asyncio.get_running_loop().create_future()
        options: dict[str, Any] = {"on_delivery": lambda err, msg: self._resolve(delivered, err, msg)}
        if partition is not None:
            options["partition"] = partition
        if timestamp:
            options["timestamp"] = int(timestamp * 1000)
        if headers:
            options["headers"] = list(headers.items()) if isinstance(headers, dict) else headers
        await self._produce(topic, key, value, options)
        return delivered

    async def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        """``send`` for a record nobody awaits: no future (a lost record still stops the worker)."""
        await self._produce(topic, key, value, {"on_delivery": self.check_delivery})

    def produce_now(
        self, topic: str, key: bytes, value: bytes | None, partition: int, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        """Produce from synchronous code (a table write); blocks only while librdkafka's queue is full.

        ``on_delivery(err, msg)`` must pass a failure to ``check_delivery``.
        """
        if self._rdkafka is None:
            raise RuntimeError("the producer is not started")
        while True:
            try:
                return self._rdkafka.produce(topic, value, key, partition=partition, on_delivery=on_delivery)
            except BufferError:
                self._rdkafka.poll(_POLL_INTERVAL_S)

    async def _produce(self, topic: str, key: bytes | None, value: bytes | None, options: dict[str, Any]) -> None:
        if self._rdkafka is None:
            raise RuntimeError("the producer is not started")
        while True:
            try:
                return self._rdkafka.produce(topic, value, key, **options)
            except BufferError:  # librdkafka's queue is full: let it drain, never drop
                self._rdkafka.poll(0)
                await asyncio.sleep(_POLL_INTERVAL_S)

    def _resolve(self, delivered: asyncio.Future[RecordMetadata], err: Any, msg: Any) -> None:
        if (exc := self.check_delivery(err, msg)) is not None:
            delivered.set_exception(exc)
            return
        tp = TP(msg.topic(), msg.partition())
        delivered.set_result(RecordMetadata(tp.topic, tp.partition, tp, msg.offset(), msg.timestamp()[1] / 1000))

    def check_delivery(self, err: Any, msg: Any) -> BaseException | None:
        """A failed delivery: remember it (``flush`` raises it) and stop the worker."""
        if err is None:
            return None
        exc = self._failure = confluent_kafka.KafkaException(err)
        log.error("could not deliver to %s[%s]: %s; stopping the worker", msg.topic(), msg.partition(), err)
        self._crashing = asyncio.ensure_future(self.app.crash(exc))
        return exc

    async def flush(self) -> None:
        """Every record sent so far is acknowledged (Faust calls this before committing offsets)."""
        await self.buffer.flush()
        await self._drain()
        if self._failure is not None:
            raise self._failure  # never commit offsets past a record that was lost

    async def _drain(self, timeout: float | None = None) -> int:
        """Serve delivery reports until none is outstanding (or ``timeout``); returns how many are left."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self._rdkafka is not None and len(self._rdkafka):
            if deadline is not None and asyncio.get_running_loop().time() > deadline:
                return len(self._rdkafka)
            self._rdkafka.poll(0)
            await asyncio.sleep(_POLL_INTERVAL_S)
        return 0
