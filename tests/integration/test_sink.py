"""The sink against a real broker and chDB: counts in ClickHouse, replays, crashes, outages, dead letters.

Merges are stopped on the detail tables while a test runs, so ``count()`` without FINAL counts every
row ever inserted: equal to the records delivered means no batch was inserted twice (a background
merge of a ReplacingMergeTree could otherwise hide a duplicate insert).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from deploy.topics import TopicSpec, create_topics
from schemas.serde import AvroSerde
from sinks.aggregates import BUILTIN_METRIC
from sinks.batching import Batch
from sinks.migrator import migrate
from sinks.report import fetch_report
from sinks.service import build_worker
from sinks.tables import TABLES, sink_topics
from sinks.worker import SinkStats
from tests.unit.sinks.scenario import EXPERIMENTS, Scenario, build_scenario

pytestmark = pytest.mark.integration

DETAIL = {"first_exposures": "first_exposures", "attributed_conversions": "conversions",
          "assignment_flags": "assignment_flags", "variant_switches": "variant_switches",
          "experiment_definitions": "experiment_definitions", "unattributed_events": "unattributed_events"}  # fmt: skip


@dataclass
class Sink:
    """One test's pipeline end: topics under a fresh prefix, a migrated database, a consumer group."""

    bootstrap: str
    prefix: str
    client: Any
    group: str

    def topic(self, role: str) -> str:
        return self.prefix + role.replace("_", "-")

    def run(self, *, client: Any = None, after_insert: Callable[[Batch], None] | None = None) -> SinkStats:
        worker = build_worker(
            bootstrap=self.bootstrap, topic_prefix=self.prefix, group=self.group, client=client or self.client,
            max_rows=5000, interval=0.2, retry_max=0.5, after_insert=after_insert,
        )  # fmt: skip
        stop = threading.Event()
        timer = threading.Timer(120, stop.set)
        timer.start()
        try:
            return worker.run(stop=stop, stop_when_idle=True)
        finally:
            timer.cancel()


@pytest.fixture
def sink(kafka_bootstrap: str, topic_prefix: str, clickhouse: Any) -> Iterator[Sink]:
    create_topics(
        AdminClient({"bootstrap.servers": kafka_bootstrap}), TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    )
    migrate(clickhouse)
    for table in DETAIL.values():
        clickhouse.command(f"SYSTEM STOP MERGES {table}")
    yield Sink(kafka_bootstrap, topic_prefix, clickhouse, f"sink-{uuid.uuid4().hex[:8]}")


def publish(sink: Sink, records: dict[str, list[tuple[bytes, dict[str, Any]]]]) -> list[tuple[str, int, int]]:
    """Produce Avro records per role; (topic, partition, offset) of each, in order."""
    placed: list[tuple[str, int, int]] = []
    producer = Producer({"bootstrap.servers": sink.bootstrap, "acks": "all", "enable.idempotence": True})
    for role, items in records.items():
        serde = AvroSerde(TABLES[role].record)
        for key, record in items:
            _produce(producer, sink.topic(role), key, serde.encode(record), placed)
    assert producer.flush(30) == 0
    return placed


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, placed: list[tuple[str, int, int]]) -> None:
    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        placed.append((msg.topic(), msg.partition(), msg.offset()))

    producer.produce(topic, key=key, value=value, on_delivery=delivered)
    producer.poll(0)


def raw_counts(client: Any) -> dict[str, int]:
    """Rows per detail table, duplicates included (merges are stopped)."""
    return {table: client.command(f"SELECT count() FROM {table}") for table in DETAIL.values()}


def aggregates(client: Any) -> dict[tuple[str, ...], tuple[Any, ...]]:
    """The sink's statistics tables, summed per experiment, variant (and metric)."""
    minutes = """
        SELECT experiment, variant, sum(exposed_units), sum(exposures), sum(converting_units), sum(conversions),
               sum(late_conversions), sum(multi_variant_units)
        FROM variant_minutes GROUP BY experiment, variant
    """
    out = {(row[0], row[1]): tuple(row[2:]) for row in client.query(minutes).result_rows}
    for table in ("metric_stats", "multi_metric_stats"):
        sums = f"""
            SELECT experiment, metric, variant, sum(nonzero), round(sum(sum_x), 6), round(sum(sum_x2), 6),
                   round(sum(sum_y), 6), round(sum(sum_y2), 6), round(sum(sum_xy), 6)
            FROM {table} GROUP BY experiment, metric, variant
        """
        out |= {(table, *row[:3]): tuple(row[3:]) for row in client.query(sums).result_rows}
    return out


def snapshot(client: Any) -> dict[str, Any]:
    reports = {policy: fetch_report(client, None, policy=policy) for policy in ("exclude", "first_seen")}
    return {"raw": raw_counts(client), "aggregates": aggregates(client), "reports": reports}


def assert_matches(report: dict[str, Any], scenario: Scenario, policy: str) -> None:
    for key, want in scenario.expected(policy).items():
        got = report["experiments"][key]
        assert {k: got[k] for k in ("exposures", "mismatches", "multi_variant_units")} == {
            k: want[k] for k in ("exposures", "mismatches", "multi_variant_units")
        }
        for name, counts in want["variants"].items():
            assert {k: got["variants"][name][k] for k in counts} == counts, (key, name)


def test_every_record_lands_once_and_the_report_counts_the_truth(sink: Sink) -> None:
    scenario = build_scenario()
    publish(sink, scenario.records)

    stats = sink.run()

    assert stats.records == sum(len(items) for items in scenario.records.values())
    assert raw_counts(sink.client) == {DETAIL[role]: len(items) for role, items in scenario.records.items()}
    for policy in ("exclude", "first_seen"):
        assert_matches(fetch_report(sink.client, None, policy=policy), scenario, policy)
    report = fetch_report(sink.client, "moon_mars", policy="exclude")["experiments"]["moon_mars"]
    assert report["revision"] == 2 and report["control"] == "Moon"
    unattributed = fetch_report(sink.client, None, policy="exclude")["unattributed_events"]
    assert unattributed == scenario.expected_unattributed() and sum(unattributed.values()) == 60


def test_aggregates_hold_the_sufficient_statistics(sink: Sink) -> None:
    """The statistics tables equal the truth over the deduplicated records (re-emissions counted once)."""
    scenario = build_scenario()
    publish(sink, scenario.records)
    sink.run()

    got = aggregates(sink.client)

    first_seen, exclude = scenario.expected("first_seen"), scenario.expected("exclude")
    for key, spec in EXPERIMENTS.items():
        for name, _ in spec["variants"]:
            want, kept = first_seen[key]["variants"][name], exclude[key]["variants"][name]
            mine = {u: r for (e, u), r in scenario.units.items() if e == key and r["variant"] == name}
            switched = [u for e, u in scenario.switched if e == key and u in mine]
            assert got[(key, name)] == (
                want["units"], sum(1 + r["duplicates"] for r in mine.values()), want["converting_units"],
                want["conversions"], want["late_conversions"], len(switched),
            )  # fmt: skip
            builtin = got[("metric_stats", key, BUILTIN_METRIC, name)]
            assert builtin[:4:3] == (want["converting_units"], want["late_conversions"])
            assert builtin[1] == want["conversions"]
            multi = got.get(("multi_metric_stats", key, BUILTIN_METRIC, name), (0,) * 6)
            assert (multi[0], multi[1]) == (
                want["converting_units"] - kept["converting_units"],
                want["conversions"] - kept["conversions"],
            )
    assert any(u for _, u in scenario.switched)


def test_replaying_every_offset_changes_no_number(sink: Sink) -> None:
    scenario = build_scenario()
    publish(sink, scenario.records)
    first = sink.run()
    before = snapshot(sink.client)
    reset_to_earliest(sink)

    second = sink.run()

    assert second.records == first.records
    assert second.replayed_batches == second.batches == first.batches
    assert snapshot(sink.client) == before


def test_a_replay_clickhouse_no_longer_deduplicates_changes_no_number(sink: Sink) -> None:
    """A group reset long after: ClickHouse has forgotten the tokens (window 0 here), the ledger has not."""
    scenario = build_scenario()
    publish(sink, scenario.records)
    first = sink.run()
    before = snapshot(sink.client)
    for table in [*DETAIL.values(), "exposure_stats", "metric_stats", "multi_exposure_stats", "multi_metric_stats"]:
        sink.client.command(f"ALTER TABLE {table} MODIFY SETTING non_replicated_deduplication_window = 0")
    reset_to_earliest(sink)

    second = sink.run()

    assert second.replayed_batches == second.batches == first.batches
    assert second.rows_inserted == 0 and second.already_inserted > 0
    assert snapshot(sink.client) == before


def reset_to_earliest(sink: Sink) -> None:
    admin = AdminClient({"bootstrap.servers": sink.bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    partitions = [TopicPartition(t, p, 0) for t in sink_topics(sink.prefix) for p in metadata[t].partitions]
    futures = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(sink.group, partitions)])
    for future in futures.values():
        future.result(timeout=30)


class Crash(BaseException):
    """Stands for the process dying between the insert and the offset commit (the worker retries Exceptions)."""


def test_a_crash_between_insert_and_commit_is_not_counted_twice(sink: Sink) -> None:
    scenario = build_scenario()
    early = {role: items[: len(items) // 2] for role, items in scenario.records.items()}
    late = {role: items[len(items) // 2 :] for role, items in scenario.records.items()}
    publish(sink, early)
    crashed: list[Batch] = []

    def crash(batch: Batch) -> None:
        if batch.topic == sink.topic("first_exposures") and batch.rows:
            crashed.append(batch)
            raise Crash

    with pytest.raises(Crash):
        sink.run(after_insert=crash)
    publish(sink, late)  # the crashed partition now holds more than the inserted batch did
    stats = sink.run()

    assert stats.replayed_batches >= 1
    assert raw_counts(sink.client) == {DETAIL[role]: len(items) for role, items in scenario.records.items()}
    assert_matches(fetch_report(sink.client, None, policy="exclude"), scenario, "exclude")
    ranges = sink.client.query(
        "SELECT first_offset, last_offset FROM sink_batches FINAL WHERE topic = {t:String} AND partition = {p:UInt32}",
        parameters={"t": crashed[0].topic, "p": crashed[0].partition},
    ).result_rows
    assert (crashed[0].first_offset, crashed[0].last_offset) in ranges


class FlakyClickHouse:
    """The real client, except that the first ``failures`` data inserts fail as if the server were down."""

    def __init__(self, client: Any, failures: int, on_failure: Callable[[str], None]) -> None:
        self._client, self._left, self._on_failure = client, failures, on_failure
        self.failed: list[str] = []
        self.succeeded: list[str] = []

    def insert(self, table: str, rows: Any, **kwargs: Any) -> Any:
        token = kwargs.get("settings", {}).get("insert_deduplication_token")
        if token and self._left > 0:
            self._left -= 1
            self.failed.append(token)
            self._on_failure(token)
            raise OperationalError("Error HTTPConnectionPool: connection refused (simulated outage)")
        result = self._client.insert(table, rows, **kwargs)
        if token:
            self.succeeded.append(token)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_unavailable_clickhouse_is_retried_with_the_same_batch_and_nothing_committed(sink: Sink) -> None:
    scenario = build_scenario(units=200)
    publish(sink, scenario.records)
    committed_at_failure: list[tuple[int, int]] = []
    probe = Consumer({"bootstrap.servers": sink.bootstrap, "group.id": sink.group})

    def check_uncommitted(token: str) -> None:
        topic, partition, offsets, _ = token.rsplit("/", 3)
        first = int(offsets.split("-")[0])
        [tp] = probe.committed([TopicPartition(topic, int(partition))], timeout=10)
        committed_at_failure.append((tp.offset, first))

    flaky = FlakyClickHouse(sink.client, failures=4, on_failure=check_uncommitted)
    try:
        stats = sink.run(client=flaky)
    finally:
        probe.close()

    assert stats.retries >= 4
    assert set(flaky.failed) <= set(flaky.succeeded)  # every failed batch was retried under its own token
    assert all(offset <= first for offset, first in committed_at_failure)
    assert raw_counts(sink.client) == {DETAIL[role]: len(items) for role, items in scenario.records.items()}
    assert_matches(fetch_report(sink.client, None, policy="first_seen"), scenario, "first_seen")


def test_undecodable_records_go_to_dead_letters_and_the_sink_keeps_going(sink: Sink) -> None:
    scenario = build_scenario(units=100)
    publish(sink, scenario.records)
    exposure = dict(scenario.records["first_exposures"][0][1])
    exposure.pop("duplicates")
    conversion = {**scenario.records["attributed_conversions"][0][1], "event_id": "not-a-uuid"}
    bad = {
        b"garbage": "bad_magic",
        b"\x00\x00\x00\x00\x07": "no_registry",
        b"": "truncated",
        AvroSerde("Exposure").encode(exposure): "wrong_record",
    }
    placed: list[tuple[str, int, int]] = []
    producer = Producer({"bootstrap.servers": sink.bootstrap})
    for value in bad:
        _produce(producer, sink.topic("first_exposures"), b"k", value, placed)
    _produce(
        producer,
        sink.topic("attributed_conversions"),
        b"k",
        AvroSerde("AttributedConversion").encode(conversion),
        placed,
    )
    assert producer.flush(30) == 0
    publish(sink, {"first_exposures": scenario.records["first_exposures"][:5]})  # good records after the bad

    stats = sink.run()

    letters = read_dead_letters(sink, expected=5)
    kinds = {**bad, AvroSerde("AttributedConversion").encode(conversion): "invalid_record"}
    assert {(d["raw"], d["error_kind"]) for d in letters} == set(kinds.items())
    [invalid] = [d for d in letters if d["error_kind"] == "invalid_record"]
    assert invalid["message"].startswith("AttributedConversion.event_id: must be a valid UUID")
    assert {(d["source_topic"], d["source_partition"], d["source_offset"]) for d in letters} == set(placed)
    assert all(d["job"] == "abstream-sink" and d["message"] for d in letters)
    assert stats.dead_letters == 5
    counts = raw_counts(sink.client)
    assert counts["first_exposures"] == len(scenario.records["first_exposures"]) + 5
    assert counts["conversions"] == len(scenario.records["attributed_conversions"])


def read_dead_letters(sink: Sink, expected: int) -> list[dict[str, Any]]:
    consumer = Consumer(
        {"bootstrap.servers": sink.bootstrap, "group.id": f"dl-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([sink.topic("dead_letters")])
    serde, letters = AvroSerde("DeadLetter"), []
    try:
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                letters.append(serde.decode(msg.value()))
            if len(letters) >= expected and msg is None:
                break
    finally:
        consumer.close()
    return letters


@pytest.mark.parametrize("policy", ["exclude", "first_seen"])
def test_the_report_from_the_aggregates_equals_the_view_that_scans_the_detail(sink: Sink, policy: str) -> None:
    from sinks.variant_report import variant_rows

    scenario = build_scenario()
    publish(sink, scenario.records)
    sink.run()
    sql = "SELECT * FROM experiment_report(policy = {policy:String}) ORDER BY experiment, is_control DESC, variant"

    view = list(sink.client.query(sql, parameters={"policy": policy}).named_results())
    ours = variant_rows(sink.client, None, policy=policy)  # type: ignore[arg-type]

    assert [(r["experiment"], r["variant"]) for r in ours] == [(r["experiment"], r["variant"]) for r in view]
    for mine, theirs in zip(ours, view, strict=True):
        for key, value in mine.items():
            want = theirs[key]
            if isinstance(want, float) and want != want:  # NaN: the view's "no value"
                want = None
            if key in ("defined", "is_control", "srm_flag") and want is not None:
                want = bool(want)
            assert value == (pytest.approx(want, rel=1e-9) if isinstance(want, float) else want), (mine["variant"], key)
