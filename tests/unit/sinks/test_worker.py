"""The worker's protocol with fakes injected: order of steps, retries, crashes, rebalances, dead letters.

``FakeClickHouse`` drops an insert whose token it has seen, as ClickHouse does within its dedup
window, so "rows stored" is what a real table would hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from schemas.serde import AvroSerde
from sinks.batching import Batch, PartitionBuffer, Plan
from sinks.tables import TABLES
from sinks.worker import SinkWorker
from tests.unit.sinks.scenario import build_scenario

TOPIC = "p.first-exposures"
DEFINITIONS = "p.experiment-definitions"


class FakeError:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return False

    def str(self) -> str:
        return f"error {self._code}"


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None, error: Any = None) -> None:
        self._t, self._p, self._o, self._v, self._e = topic, partition, offset, value, error

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes | None:
        return self._v

    def error(self) -> Any:
        return self._e


class FakeConsumer:
    """One partition per topic; starts at the committed offset; EOF after the last record."""

    def __init__(self, log: dict[str, list[bytes | None]], committed: dict[str, int], events: list[str]) -> None:
        self.log, self.committed, self.events = log, committed, events
        self.position = dict(committed)
        self.paused: set[str] = set()
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.eof_sent: set[str] = set()
        self.assigned = False

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.callbacks = callbacks

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if not self.assigned:
            self.assigned = True
            self.callbacks["on_assign"](self, [TopicPartition(t, 0) for t in self.log])
        out = []
        for topic, values in self.log.items():
            if topic in self.paused:
                continue
            while self.position.get(topic, 0) < len(values) and len(out) < num_messages:
                offset = self.position.get(topic, 0)
                out.append(FakeMessage(topic, 0, offset, values[offset]))
                self.position[topic] = offset + 1
            if self.position.get(topic, 0) == len(values) and topic not in self.eof_sent:
                self.eof_sent.add(topic)
                out.append(FakeMessage(topic, 0, len(values), None, FakeError(-191)))
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        for tp in offsets:
            self.committed[tp.topic] = tp.offset
            self.events.append(f"commit {tp.offset}")

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.topic for tp in partitions}
        self.events.append("pause")

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.topic for tp in partitions}
        self.events.append("resume")

    def close(self) -> None:
        self.events.append("close")


class FakeClickHouse:
    def __init__(self, events: list[str], failures: int = 0) -> None:
        self.events, self.failures = events, failures
        self.tokens: list[str] = []
        self.stored: dict[str, int] = {}

    def insert(self, table: str, rows: list[Any], column_names: list[str], settings: dict[str, Any]) -> None:
        token = settings["insert_deduplication_token"]
        self.events.append(f"insert {token.split('/')[2]}")
        self.tokens.append(token)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ClickHouse is down")
        self.stored.setdefault(token, len(rows))

    @property
    def rows(self) -> int:
        return sum(self.stored.values())


class FakeLedger:
    def __init__(self, events: list[str], *, remembers: bool = True, failures: int = 0) -> None:
        self.events, self.remembers, self.failures = events, remembers, failures
        self.recorded: dict[tuple[str, int, int], int] = {}
        self.inserted: dict[tuple[str, int, int], str] = {}

    def plans(self, topic: str, partition: int, start: int) -> tuple[list[Plan], bool]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ClickHouse is down")
        if not self.remembers:
            return [], True
        found = sorted((f, last) for (t, p, f), last in self.recorded.items() if (t, p) == (topic, partition))
        return [Plan(f, last, self.inserted.get((topic, partition, f), "")) for f, last in found if f >= start], True

    def record(self, batches: list[Batch]) -> None:
        self.events.append("ledger " + ", ".join(f"{b.first_offset}-{b.last_offset}" for b in batches))
        for batch in batches:
            self.recorded[(batch.topic, batch.partition, batch.first_offset)] = batch.last_offset

    def record_inserted(self, batch: Batch) -> None:
        self.events.append(f"inserted {batch.first_offset}-{batch.last_offset}")
        if self.remembers:
            self.inserted[(batch.topic, batch.partition, batch.first_offset)] = batch.token


class FakeDeadLetters:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.sent: list[tuple[str, int, int, str]] = []

    def send(self, topic: str, partition: int, entries: list[Any]) -> None:
        for e in entries:
            self.sent.append((topic, partition, e.offset, e.error.kind))
        if entries:
            self.events.append(f"dead letters {len(entries)}")

    def close(self) -> None:
        pass


class Crash(BaseException):
    pass


def exposures(n: int) -> list[bytes | None]:
    serde = AvroSerde("FirstExposure")
    return [serde.encode(record) for _, record in build_scenario(units=n).records["first_exposures"][:n]]


def make_worker(
    consumer: FakeConsumer, client: FakeClickHouse, ledger: FakeLedger, events: list[str], **kw: Any
) -> SinkWorker:
    topics = {TOPIC: TABLES["first_exposures"], DEFINITIONS: TABLES["experiment_definitions"]}
    return SinkWorker(
        consumer=consumer, client=client, topics=topics, ledger=ledger,
        dead_letters=FakeDeadLetters(events), max_rows=kw.pop("max_rows", 5000), interval=0.0, retry_max=0.01, **kw,
    )  # fmt: skip


def crash_then_restart(*, ledger_remembers: bool) -> FakeClickHouse:
    """Insert 10 records, crash before the commit, restart with 20 records waiting."""
    values, events = exposures(20), []
    client, ledger, committed = FakeClickHouse(events), FakeLedger(events, remembers=ledger_remembers), {}

    def crash(_batch: Batch) -> None:
        raise Crash

    with pytest.raises(Crash):
        make_worker(
            FakeConsumer({TOPIC: values[:10]}, committed, events), client, ledger, events, after_insert=crash
        ).run()
    assert committed == {}
    make_worker(FakeConsumer({TOPIC: values}, committed, events), client, ledger, events).run(stop_when_idle=True)
    assert committed == {TOPIC: 20}
    return client


def test_a_crash_before_the_commit_replays_the_recorded_range_and_counts_once() -> None:
    client = crash_then_restart(ledger_remembers=True)

    assert client.tokens[0] == client.tokens[1]  # the replay carried the first attempt's token
    assert client.rows == 20


def test_without_the_ledger_the_same_crash_would_count_the_batch_twice() -> None:
    client = crash_then_restart(ledger_remembers=False)

    assert client.tokens[0] != client.tokens[1]  # 0-9 first, then 0-19: a different block
    assert client.rows == 30


def test_a_replayed_range_recorded_as_inserted_is_not_inserted_again() -> None:
    """A crash after the ledger recorded the insert (in the dead letters, say): the replay only commits.

    The case a deduplication token cannot cover once ClickHouse has forgotten it (a group reset weeks later).
    """
    values, events = exposures(10), []
    client, ledger, committed = FakeClickHouse(events), FakeLedger(events), {}
    make_worker(FakeConsumer({TOPIC: values}, committed, events), client, ledger, events).run(stop_when_idle=True)
    committed.clear()  # the group is reset to the earliest offsets
    events.clear()

    stats = make_worker(FakeConsumer({TOPIC: values}, committed, events), client, ledger, events).run(
        stop_when_idle=True
    )

    assert [e for e in events if e.startswith("insert")] == []
    assert (stats.replayed_batches, stats.already_inserted, stats.rows_inserted) == (1, 1, 0)
    assert committed == {TOPIC: 10} and client.rows == 10 and len(client.tokens) == 1


def test_the_offset_is_committed_after_the_insert_and_the_dead_letters() -> None:
    events: list[str] = []
    values = [*exposures(3), b"junk"]
    consumer = FakeConsumer({TOPIC: values}, {}, events)
    client, ledger = FakeClickHouse(events), FakeLedger(events)

    stats = make_worker(consumer, client, ledger, events).run(stop_when_idle=True)

    assert events == ["ledger 0-3", "insert 0-3", "inserted 0-3", "dead letters 1", "commit 4", "close"]
    assert (stats.rows_inserted, stats.dead_letters, client.rows) == (3, 1, 3)


def test_an_outage_pauses_the_partition_and_retries_the_same_batch_until_it_succeeds() -> None:
    events: list[str] = []
    consumer = FakeConsumer({TOPIC: exposures(5)}, {}, events)
    client, ledger = FakeClickHouse(events, failures=3), FakeLedger(events)

    stats = make_worker(consumer, client, ledger, events).run(stop_when_idle=True)

    assert len(set(client.tokens)) == 1 and len(client.tokens) == 4
    assert events == [
        "ledger 0-4", *["insert 0-4", "pause"] * 3, "insert 0-4", "inserted 0-4", "commit 5", "resume", "close"
    ]  # fmt: skip
    assert stats.retries == 3 and client.rows == 5 and not consumer.paused


def test_a_long_outage_keeps_backing_off_at_the_cap() -> None:
    events: list[str] = []
    consumer = FakeConsumer({TOPIC: exposures(1)}, {}, events)
    worker = make_worker(consumer, FakeClickHouse(events), FakeLedger(events), events)
    buffer = PartitionBuffer(TOPIC, 0, failures=2_000)  # hours of retries at the cap

    worker._failed(buffer, now=100.0, exc=ConnectionError("down"), force=False)

    assert buffer.retry_at == 100.01 and buffer.failures == 2_001


def test_a_partition_paused_by_an_outage_resumes_to_fetch_the_rest_of_a_recorded_range() -> None:
    events: list[str] = []
    consumer = FakeConsumer({TOPIC: exposures(10)}, {}, events)
    ledger = FakeLedger(events, failures=1)
    ledger.recorded[(TOPIC, 0, 0)] = 9  # inserted before a crash; 5 records arrive per poll
    stop = threading.Event()
    timer = threading.Timer(10, stop.set)
    timer.start()

    stats = make_worker(consumer, FakeClickHouse(events), ledger, events, max_rows=5).run(
        stop=stop, stop_when_idle=True
    )
    timer.cancel()

    assert stats.replayed_batches == 1 and consumer.committed == {TOPIC: 10}


def test_the_ranges_cut_in_one_pass_share_one_ledger_insert() -> None:
    events: list[str] = []
    definition = AvroSerde("ExperimentDefinition").encode(
        build_scenario(units=1).records["experiment_definitions"][0][1]
    )
    consumer = FakeConsumer({TOPIC: exposures(3), DEFINITIONS: [definition]}, {}, events)

    make_worker(consumer, FakeClickHouse(events), FakeLedger(events), events).run(stop_when_idle=True)

    assert [e for e in events if e.startswith("ledger")] == ["ledger 0-2, 0-0"]
    assert consumer.committed == {TOPIC: 3, DEFINITIONS: 1}


def test_batches_are_bounded_by_max_rows() -> None:
    events: list[str] = []
    consumer = FakeConsumer({TOPIC: exposures(7)}, {}, events)

    make_worker(consumer, FakeClickHouse(events), FakeLedger(events), events, max_rows=3).run(stop_when_idle=True)

    assert [e for e in events if e.startswith("commit")] == ["commit 3", "commit 6", "commit 7"]


def test_tombstones_on_the_compacted_definitions_topic_are_skipped_not_dead_lettered() -> None:
    events: list[str] = []
    consumer = FakeConsumer({DEFINITIONS: [None]}, {}, events)

    stats = make_worker(consumer, FakeClickHouse(events), FakeLedger(events), events).run(stop_when_idle=True)

    assert stats.dead_letters == 0 and stats.rows_inserted == 0 and "commit 1" in events


def test_revoked_partitions_drop_their_uncommitted_records() -> None:
    events: list[str] = []
    consumer = FakeConsumer({TOPIC: exposures(3)}, {}, events)
    client = FakeClickHouse(events)
    worker = make_worker(consumer, client, FakeLedger(events), events)
    consumer.subscribe([TOPIC], on_assign=worker._on_assign)
    for message in consumer.consume(10, 0):
        worker._accept(message, now=0.0)

    worker._on_revoke(consumer, [TopicPartition(TOPIC, 0)])
    worker._flush(now=10.0, force=True)

    assert worker.stats.records == 3 and client.tokens == [] and consumer.committed == {}


def test_a_partition_paused_for_a_retry_and_given_back_by_a_rebalance_is_consumed_again() -> None:
    """The consumer's session expires during an outage: the paused partition is revoked and re-assigned."""
    events: list[str] = []
    consumer = FakeConsumer({TOPIC: exposures(6)}, {}, events)  # keeps a pause across assignments, as librdkafka
    client = FakeClickHouse(events, failures=1)
    worker = make_worker(consumer, client, FakeLedger(events), events, max_rows=3)
    consumer.subscribe([TOPIC], on_assign=worker._on_assign)
    for message in consumer.consume(3, 0):
        worker._accept(message, now=0.0)
    worker._flush(now=10.0, force=False)  # the insert fails: paused for a retry
    assert TOPIC in consumer.paused

    worker._on_revoke(consumer, [TopicPartition(TOPIC, 0)])
    consumer.position = dict(consumer.committed)  # the group hands it back from the committed offset
    worker._on_assign(consumer, [TopicPartition(TOPIC, 0)])
    stats = worker.run(stop_when_idle=True)

    assert TOPIC not in consumer.paused
    assert consumer.committed == {TOPIC: 6} and client.rows == stats.rows_inserted == 6
