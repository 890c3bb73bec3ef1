"""The logger's background thread: encode, produce, spool what Kafka cannot take, replay it later.

Records move through three states, and only this thread moves them:

    caller -> hand-off queue -> produce() ---delivered---> sent
                                    |  \\--failed/purged--> spool
                                    \\--(Kafka down or spool non-empty)--> spool --replay--> replayed

While the spool holds records, new records are appended behind them, so replay keeps the logging order.
A circuit breaker opens when librdkafka reports every broker down or a delivery fails: queued messages are
purged into the spool (so a crash of the app loses none of them) and a metadata probe, with back-off,
closes it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer

from abstream.errors import SpoolFullError
from producers.spool import Spool, SpoolRecord

__all__ = ["Dispatcher", "LoggerStats"]

log = logging.getLogger("abstream.producers")

# (topic, unit id (the key), encode, values) as handed over by the caller; encode(values) -> bytes.
Item = tuple[str, str, Callable[[tuple[Any, ...]], bytes], tuple[Any, ...]]

_IDLE_WAIT_S = 0.005
_REPLAY_BATCH = 1000
_BROKERS_DOWN = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._MSG_TIMED_OUT)


@dataclass
class LoggerStats:
    """Counters since the logger started. ``failed`` counts records lost for good (spool full): alert on it."""

    sent: int = 0
    replayed: int = 0
    spooled: int = 0
    delivery_failures: int = 0
    failed: int = 0


class _ReplayBatch:
    """Records read from the spool and produced; acked only once every delivery report is in."""

    def __init__(self, records: list[SpoolRecord]) -> None:
        self.records = records
        self.outcomes: list[bool | None] = [None] * len(records)
        self.pending = len(records)

    def delivered_prefix(self) -> int:
        n = 0
        while n < len(self.outcomes) and self.outcomes[n]:
            n += 1
        return n


class Dispatcher(threading.Thread):
    def __init__(
        self,
        producer: Producer,
        spool: Spool,
        *,
        probe_topic: str,
        max_queue: int,
        probe_backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        super().__init__(name="abstream-logger", daemon=True)
        self.producer = producer
        self.spool = spool
        self.queue: deque[Item] = deque()
        self.max_queue = max_queue
        self.stats = LoggerStats()
        self._stats_lock = threading.Lock()
        self._probe_topic = probe_topic
        self._backoff_min, self._backoff_max = probe_backoff
        self._backoff = self._backoff_min
        self._healthy = True
        self._next_probe = 0.0
        self._replay: _ReplayBatch | None = None
        self._stopping = threading.Event()
        self._stop_timeout = 0.0

    # -- called from the app's threads ---------------------------------------------------------
    def submit(self, item: Item) -> None:
        """Hand a record over; never blocks. Past ``max_queue`` the caller encodes and spools it itself."""
        if len(self.queue) < self.max_queue:
            self.queue.append(item)
        else:
            topic, key, encode, values = item
            self._to_spool(topic, key.encode(), encode(values))

    @property
    def healthy(self) -> bool:
        return self._healthy

    def idle(self) -> bool:
        """Everything handed over is in Kafka: nothing queued, in flight, spooled or being replayed."""
        return not self.queue and len(self.producer) == 0 and self._replay is None and not self.spool.pending_records

    def handed_off(self) -> bool:
        """Nothing is waiting in memory: every record is in Kafka, in flight, or on disk in the spool."""
        return not self.queue and (self._healthy or len(self.producer) == 0)

    def stop(self, timeout: float) -> None:
        """Drain, deliver for up to ``timeout`` seconds, spool whatever is left, and end the thread."""
        self._stop_timeout = timeout
        self._stopping.set()
        self.join()

    # -- the thread ----------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:  # the thread must survive anything, or logging silently stops
                log.exception("abstream logger: unexpected error in the delivery thread")
                time.sleep(_IDLE_WAIT_S)
        try:
            self._shutdown()
        except Exception:
            log.exception("abstream logger: error while shutting down; spooled records stay on disk")

    def _tick(self) -> None:
        moved = self._drain_queue()
        self.producer.poll(0 if moved else _IDLE_WAIT_S)
        self.spool.sync_if_due()
        if not self._healthy and time.monotonic() >= self._next_probe:
            self._probe()
        if self._healthy and self._replay is None and self.spool.pending_records:
            self._start_replay()
        self._finish_replay()

    def _drain_queue(self, limit: int = 10_000) -> int:
        moved = 0
        while self.queue and moved < limit:
            topic, key, encode, values = self.queue.popleft()
            moved += 1
            try:
                value = encode(values)
            except Exception:  # the caller-side checks should make this impossible: say so loudly and count it
                log.exception("abstream logger: a record for %s could not be encoded and is lost", topic)
                with self._stats_lock:
                    self.stats.failed += 1
                continue
            self._route(topic, key.encode(), value)
        return moved

    def _route(self, topic: str, key: bytes, value: bytes) -> None:
        if self._healthy and self._replay is None and self.spool.pending_records == 0:
            try:
                self.producer.produce(topic, value, key, on_delivery=self._on_direct)
                return
            except BufferError:
                pass  # librdkafka's queue is full: the spool takes it
        self._to_spool(topic, key, value)

    def _to_spool(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            self.spool.append(topic, key, value)
        except SpoolFullError:
            log.error("abstream logger: spool full, a record for %s is lost", topic)
            with self._stats_lock:
                self.stats.failed += 1
            return
        with self._stats_lock:
            self.stats.spooled += 1

    # -- delivery reports (served by poll on this thread) ---------------------------------------
    def _on_direct(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.stats.sent += 1
            return
        self.stats.delivery_failures += 1
        self._to_spool(msg.topic(), msg.key(), msg.value())
        if err.code() != KafkaError._PURGE_QUEUE:
            self._open_breaker(err)

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's error_cb: every broker down opens the breaker."""
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._open_breaker(err)
        else:
            log.debug("abstream logger: Kafka reports %s", err)

    def _open_breaker(self, err: KafkaError) -> None:
        if self._healthy:
            log.warning("abstream logger: Kafka unavailable (%s); spooling to %s", err, self.spool.directory)
            self._healthy = False
            self._backoff = self._backoff_min
            self._next_probe = time.monotonic() + self._backoff
            # Queued messages go to the spool now rather than after message.timeout.ms, so a crash keeps them.
            self.producer.purge(in_queue=True, in_flight=False, blocking=False)

    def _probe(self) -> None:
        try:
            self.producer.list_topics(self._probe_topic, timeout=1.0)
        except Exception:
            self._backoff = min(self._backoff * 2, self._backoff_max)
            self._next_probe = time.monotonic() + self._backoff
            return
        log.info("abstream logger: Kafka is back; replaying %d spooled record(s)", self.spool.pending_records)
        self._healthy = True

    # -- replay ------------------------------------------------------------------------------------
    def _start_replay(self) -> None:
        batch = _ReplayBatch(self.spool.read(_REPLAY_BATCH))
        for i, rec in enumerate(batch.records):
            try:
                self.producer.produce(
                    rec.topic,
                    rec.value,
                    rec.key,
                    headers=rec.headers,  # type: ignore[arg-type]  # list[tuple[str, bytes]] is accepted
                    on_delivery=self._replay_callback(batch, i),
                )
            except BufferError:
                batch.outcomes[i:] = [False] * (len(batch.records) - i)
                batch.pending -= len(batch.records) - i
                break
        self._replay = batch

    def _replay_callback(self, batch: _ReplayBatch, i: int) -> Callable[[KafkaError | None, Any], None]:
        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            batch.outcomes[i] = err is None
            batch.pending -= 1
            if err is not None and err.code() != KafkaError._PURGE_QUEUE:
                self._open_breaker(err)

        return on_delivery

    def _finish_replay(self) -> None:
        batch = self._replay
        if batch is None or batch.pending:
            return
        done = batch.delivered_prefix()
        if done:
            self.stats.replayed += done
            self.spool.ack(batch.records[done - 1].position)
        if done < len(batch.records):
            self.spool.rewind()  # the rest is read again on the next replay, in order
        self._replay = None  # last: idle() must not see the batch gone before it is accounted for

    def _shutdown(self) -> None:
        self._drain_queue(limit=len(self.queue) + 1)
        deadline = time.monotonic() + self._stop_timeout
        while time.monotonic() < deadline and not self.idle():
            self._tick()
        self.producer.purge(in_queue=True, in_flight=False, blocking=False)
        self.producer.flush(min(5.0, self._stop_timeout))
        self._finish_replay()
        if self._replay is not None:  # deliveries still unknown: keep them spooled, read again next time
            self._replay = None
            self.spool.rewind()
        self.spool.flush()
