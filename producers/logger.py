"""The exposure logger client apps import: validate, hand off, return; never block, never lose.

    from producers.logger import ExposureLogger

    with ExposureLogger(bootstrap_servers="127.0.0.1:9092", spool_dir="/var/spool/myapp-abstream") as logger:
        logger.log_exposure(experiment="checkout_v2", revision=3, variant="B", unit_id="u-42")
        logger.log_event(unit_id="u-42", name="purchase", value=19.99)

``log_exposure``/``log_event`` check their arguments on the calling thread (a bad one raises
``InvalidRecordError`` naming the field; nothing reaches Kafka), then hand the record to a background
thread that encodes it (Avro single-object encoding) and produces it keyed by unit id, so exposures and
events of a unit land in the same partition. When Kafka cannot take a record it goes to a durable local
spool and is replayed in order once Kafka is back; ``event_id`` makes any replay idempotent downstream.

A service that logs records on behalf of clients (the HTTP collector) passes, per call, the client's
``event_id``, ``source`` and its own clock's ``received_ts``.
"""

from __future__ import annotations

import atexit
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from abstream.errors import AbstreamError, ConfigError
from producers.dispatcher import Dispatcher, LoggerStats
from producers.records import (
    Source,
    build_event,
    build_exposure,
    check_event,
    check_exposure,
    check_field,
    check_map,
    check_optional_number,
    check_source,
    exposure_extras,
    new_event_id,
    optional_millis,
    to_millis,
)
from producers.spool import Spool
from schemas.serde import AvroSerde

__all__ = ["DEFAULT_PRODUCER_CONFIG", "ExposureLogger", "LoggerClosedError", "LoggerStats", "Source"]

# What a Kafka expert would set for a logger that must not lose or duplicate: every in-sync replica
# acknowledges, the idempotent producer removes retry duplicates, small linger batches, lz4 is cheap on
# CPU. murmur2 is the Java client's (and aiokafka's) partitioner: the stream jobs re-key with it, and
# co-partitioning only holds if every producer places a key on the same partition.
DEFAULT_PRODUCER_CONFIG: Mapping[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",
    "message.timeout.ms": 30_000,
    "queue.buffering.max.messages": 200_000,
    "reconnect.backoff.max.ms": 1_000,
}


_INT32 = 2**31  # Avro int


class LoggerClosedError(AbstreamError, RuntimeError):
    """``log_*`` was called after ``close()``."""


class ExposureLogger:
    """Publishes Exposure and Event records to Kafka; see the module docstring.

    ``spool_dir`` must be private to this process (it is locked). ``source`` is written into every record
    (its ``host`` defaults to this machine's name) unless a call passes its own. ``producer_config`` overrides
    :data:`DEFAULT_PRODUCER_CONFIG` key by key; ``max_queue`` bounds the in-memory hand-off (past it the
    caller spools directly, still without blocking on Kafka).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        spool_dir: str | Path,
        topic_prefix: str = "abstream.",
        source: Source | None = None,
        producer_config: Mapping[str, Any] | None = None,
        max_queue: int = 100_000,
        close_timeout: float = 10.0,
        spool_max_bytes: int = 1 << 30,
    ) -> None:
        self.exposures_topic = f"{topic_prefix}exposures"
        self.events_topic = f"{topic_prefix}events"
        source = source or Source()
        self._source = source if source.host is not None else replace(source, host=socket.gethostname())
        self._source_record = self._source.as_record()
        self._close_timeout = close_timeout
        self._exposure_serde = AvroSerde("Exposure")
        self._event_serde = AvroSerde("Event")
        self._spool = Spool(spool_dir, max_bytes=spool_max_bytes)
        self._dispatcher = Dispatcher(
            self._make_producer(bootstrap_servers, producer_config), self._spool,
            probe_topic=self.exposures_topic, max_queue=max_queue,
        )  # fmt: skip
        self._closed = False
        self._dispatcher.start()
        atexit.register(self.close)

    def _make_producer(self, bootstrap: str, overrides: Mapping[str, Any] | None) -> Producer:
        config = {**DEFAULT_PRODUCER_CONFIG, **(overrides or {}), "bootstrap.servers": bootstrap}
        config["error_cb"] = lambda err: self._dispatcher.on_error(err)
        config.setdefault("logger", logging.getLogger("abstream.producers.librdkafka"))
        try:
            return Producer(config)
        except KafkaException as exc:
            raise ConfigError(f"invalid producer_config: {exc.args[0].str()}") from exc

    # -- logging ---------------------------------------------------------------------------------
    def log_exposure(
        self,
        *,
        experiment: str,
        variant: str,
        unit_id: str,
        revision: int,
        unit_type: str = "user_id",
        scheme: str = "external",
        params: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        hash_seed: str | None = None,
        hash_version: int | None = None,
        bucket_position: float | None = None,
        bucket_index: int | None = None,
        hash_used: bool = True,
        sticky_bucket_used: bool = False,
        forced: bool = False,
        sampling_rate: float = 1.0,
        client_ts: int | datetime | None = None,
        event_id: str | None = None,
        received_ts: int | datetime | None = None,
        source: Source | None = None,
    ) -> str:
        """Log that ``unit_id`` saw ``variant`` of ``experiment`` at ``revision``; returns the event id.

        The hash inputs (``hash_seed``, ``hash_version``, ``bucket_*``) and the legitimate-exception
        markers (``hash_used``, ``sticky_bucket_used``, ``forced``) let the stream jobs re-verify the
        assignment; ``client_ts`` defaults to now (epoch millis or an aware datetime). ``received_ts``
        (same types) is for an ingesting service to stamp; ``source`` replaces the logger's for this record.
        """
        if self._closed:
            raise LoggerClosedError("log_exposure() after close()")
        # One combined test for the common case; the field-by-field checks name the culprit otherwise.
        if not (
            type(experiment) is str and experiment and type(variant) is str and variant
            and type(unit_id) is str and unit_id and type(revision) is int and 0 <= revision < _INT32
            and type(unit_type) is str and unit_type and type(scheme) is str and scheme
        ):  # fmt: skip
            experiment, variant, unit_id, revision, unit_type, scheme = check_exposure(
                experiment, variant, unit_id, revision, unit_type, scheme
            )
        extras = None
        if (
            params or context or hash_seed is not None or hash_version is not None or bucket_position is not None
            or bucket_index is not None or hash_used is not True or sticky_bucket_used is not False
            or forced is not False or sampling_rate != 1.0 or received_ts is not None or source is not None
        ):  # fmt: skip
            extras = exposure_extras(
                hash_seed, hash_version, bucket_position, bucket_index, params,
                hash_used, sticky_bucket_used, forced, sampling_rate, context, received_ts, source,
            )  # fmt: skip
        ts = time.time_ns() // 1_000_000 if client_ts is None else to_millis("Exposure", "client_ts", client_ts)
        eid = new_event_id() if event_id is None else check_field("Exposure", "event_id", event_id)
        self._dispatcher.submit(
            (
                self.exposures_topic,
                unit_id,
                self._encode_exposure,
                (eid, experiment, revision, variant, unit_type, unit_id, scheme, ts, extras),
            )
        )
        return eid

    def log_event(
        self,
        *,
        unit_id: str,
        name: str,
        unit_type: str = "user_id",
        value: float | None = None,
        properties: Mapping[str, Any] | None = None,
        ts: int | datetime | None = None,
        event_id: str | None = None,
        received_ts: int | datetime | None = None,
        source: Source | None = None,
    ) -> str:
        """Log an analytics or conversion event (``name``, optional numeric ``value``); returns the event id.

        ``ts`` defaults to now; ``received_ts`` and ``source`` are as for :meth:`log_exposure`.
        """
        if self._closed:
            raise LoggerClosedError("log_event() after close()")
        if not (
            type(unit_type) is str and unit_type and type(unit_id) is str and unit_id and type(name) is str and name
        ):
            unit_type, unit_id, name = check_event(unit_type, unit_id, name)
        values: tuple[Any, ...] = (
            new_event_id() if event_id is None else check_field("Event", "event_id", event_id),
            unit_type,
            unit_id,
            name,
            check_optional_number("Event", "value", value),
            to_millis("Event", "ts", ts),
            check_map("Event", "properties", properties),
        )
        if received_ts is not None or source is not None:
            values += (
                optional_millis("Event", "received_ts", received_ts),
                None if source is None else check_source("Event", source),
            )
        self._dispatcher.submit((self.events_topic, unit_id, self._encode_event, values))
        return values[0]

    def _encode_exposure(self, values: tuple[Any, ...]) -> bytes:
        return self._exposure_serde.encode(build_exposure(values, self._source_record))

    def _encode_event(self, values: tuple[Any, ...]) -> bytes:
        return self._event_serde.encode(build_event(values, self._source_record))

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def source(self) -> Source:
        """The ``source`` written into records whose call passes none (``host`` filled in)."""
        return self._source

    @property
    def stats(self) -> LoggerStats:
        """A snapshot of the counters: sent, replayed, spooled, delivery_failures, failed."""
        return replace(self._dispatcher.stats)

    @property
    def kafka_available(self) -> bool:
        return self._dispatcher.healthy

    @property
    def spooled_pending(self) -> int:
        """Records in the spool waiting for replay."""
        return self._spool.pending_records

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` s until everything logged so far is in Kafka (spool replay included).

        False when the time ran out: Kafka is down or slow. Nothing is lost either way; see ``close``.
        """
        return self._wait(self._dispatcher.idle, timeout)

    def wait_handed_off(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is held only in memory: every record is in Kafka or on disk in the spool."""
        return self._wait(self._dispatcher.handed_off, timeout)

    @staticmethod
    def _wait(done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what Kafka takes within ``timeout``, spool the rest, release the spool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._dispatcher.stop(self._close_timeout if timeout is None else timeout)
        self._spool.close()

    def __enter__(self) -> ExposureLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
