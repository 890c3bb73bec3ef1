"""The stream jobs on the real broker, compared topic by topic with a brute-force reference.

Workers run as ``abstream jobs run`` subprocesses, as in production: a clean run must match the
reference exactly (every output once); a run with a ``kill -9`` and restart, and a run where a second
worker joins and the first leaves, must lose nothing and may only repeat identical records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from deploy.topics import TopicSpec, create_topics
from producers.logger import DEFAULT_PRODUCER_CONFIG
from schemas.serde import AvroSerde
from tests.integration import jobs_traffic as ref

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
OUTPUTS = {
    "first-exposures": "FirstExposure",
    "variant-switches": "AssignmentFlag",
    "assignment-flags": "AssignmentFlag",
    "attributed-conversions": "AttributedConversion",
    "unattributed-events": "UnattributedEvent",
    "dead-letters": "DeadLetter",
}


class Pipeline:
    """Topics with a unique prefix, definitions published, and workers started on demand."""

    def __init__(self, bootstrap: str, prefix: str, tmp_path: Path) -> None:
        self.bootstrap, self.prefix, self.tmp = bootstrap, prefix, tmp_path
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), TopicSpec.load().resolve(prefix=prefix, brokers=1))
        # As the loggers produce: murmur2 placement, lz4 batches, and idempotence, which keeps a partition in
        # send order across retries (the reference assumes that order; a retry on the just-created topics
        # could otherwise land a batch after the next one).
        self.producer = Producer({**DEFAULT_PRODUCER_CONFIG, "bootstrap.servers": bootstrap})
        self.env = {
            **os.environ, "ABSTREAM_KAFKA_BOOTSTRAP": bootstrap, "ABSTREAM_TOPIC_PREFIX": prefix,
            "ABSTREAM_DATA_DIR": str(tmp_path / "data"), "ABSTREAM_APP_ID": f"jobs-{uuid.uuid4().hex[:8]}",
            "ABSTREAM_ALLOWED_LATENESS_MS": str(30 * ref.MINUTE),
            # Buffered events of units never seen again are decided by the sweep, also on partitions gone quiet.
            "ABSTREAM_SWEEP_INTERVAL_S": "0.2",
        }  # fmt: skip
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.produce(
            "experiment-definitions",
            [ref.definition_record(k) for k in ref.EXPERIMENTS],
            "ExperimentDefinition",
            key=lambda r: f"{r['key']}:{r['revision']}",
        )

    def produce(
        self,
        topic: str,
        records: list[dict[str, Any]],
        record: str,
        key: Callable[[dict[str, Any]], str] = lambda r: r["unit_id"],
        flush: bool = True,
    ) -> None:
        serde = AvroSerde(record)
        for r in records:
            self.producer.produce(self.prefix + topic, serde.encode(r), key(r).encode())
        if flush:
            assert self.producer.flush(30) == 0

    def produce_raw(self, topic: str, raw: bytes) -> None:
        self.producer.produce(self.prefix + topic, raw, b"malformed")
        assert self.producer.flush(30) == 0

    def start(self, name: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "abstream", "jobs", "run", "--worker-name", name, "--loglevel", "warning"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.workers.pop(name)
        os.kill(proc.pid, sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.workers):
            self.stop(name)

    def read(self, topic: str) -> list[dict[str, Any]]:
        """Every record now on an output topic, in partition-offset order."""
        serde = AvroSerde(OUTPUTS[topic])
        return [serde.decode(m.value()) for m in self.messages(self.prefix + topic)]

    def messages(self, name: str) -> list[Message]:
        """Every message now on a topic (by its full name), in partition-offset order."""
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": f"read-{uuid.uuid4()}", "enable.auto.commit": False}
        )
        try:
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
            consumer.assign([TopicPartition(name, p, 0) for p in partitions if ends[p] > 0])
            got: list[Any] = []
            while len(got) < sum(ends.values()):
                got += [m for m in consumer.consume(1000, 1.0) if m.error() is None]
            got.sort(key=lambda m: (m.partition(), m.offset()))
            return got
        finally:
            consumer.close()

    def wait_for(self, topic: str, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            records = self.read(topic)
            if len(records) >= count or time.monotonic() > deadline:
                return records
            for name, proc in self.workers.items():
                assert proc.poll() is None, f"worker {name} exited: " + (self.tmp / f"{name}.log").read_text()[-3000:]
            time.sleep(0.5)


def _send_traffic(pipe: Pipeline, traffic: ref.Traffic, fraction: tuple[float, float] = (0.0, 1.0)) -> None:
    """Both topics, in the order clients would flush them: roughly by time, up to 5 minutes out of order."""
    lo, hi = (int(len(traffic.sent) * f) for f in fraction)
    for role, record in traffic.sent[lo:hi]:
        pipe.produce(role, [record], "Exposure" if role == "exposures" else "Event", flush=False)
    assert pipe.producer.flush(30) == 0


def _send_late(pipe: Pipeline, traffic: ref.Traffic) -> None:
    for role, raw in traffic.malformed:
        pipe.produce_raw(role, raw)
    pipe.produce("exposures", traffic.clock_jump, "Exposure")
    pipe.produce("events", traffic.clock_jump_events, "Event")
    jump = {e["event_id"] for e in traffic.clock_jump_events}
    deadline = time.monotonic() + 120
    while not jump <= {c["event_id"] for c in pipe.read("attributed-conversions")} and time.monotonic() < deadline:
        time.sleep(0.5)  # every partition's watermark is now 2 hours on
    pipe.produce("events", traffic.late_events, "Event")


def _expected_conversions(traffic: ref.Traffic) -> set[tuple[str, str, str]]:
    events = traffic.events + traffic.clock_jump_events + traffic.late_events
    return ref.attributions(traffic.exposures + traffic.clock_jump, events)


def _effective(conversions: list[dict[str, Any]], first: dict[tuple[str, str], str]) -> set[tuple[str, str, str]]:
    """What counts, as the sink reads it: the latest record per (event, experiment), if its exposure is still first."""
    latest = {(c["event_id"], c["experiment"]): c for c in conversions}  # a unit's records share a partition: in order
    return {
        (event_id, key, c["exposure_event_id"])
        for (event_id, key), c in latest.items()
        if first.get((key, c["unit_id"])) == c["exposure_event_id"]
    }


def _assert_outputs(pipe: Pipeline, traffic: ref.Traffic, *, exactly_once: bool) -> None:
    exposures = traffic.exposures + traffic.clock_jump
    expected = _expected_conversions(traffic)
    deadline = time.monotonic() + 120
    while True:  # corrections may still be on their way
        firsts = pipe.read("first-exposures")
        first = {(f["experiment"], f["unit_id"]): f["event_id"] for f in firsts}
        conversions = pipe.read("attributed-conversions")
        if _effective(conversions, first) == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert first == {k: v["event_id"] for k, v in ref.first_exposures(exposures).items()}
    assert _effective(conversions, first) == expected
    got = Counter((c["event_id"], c["experiment"], c["exposure_event_id"]) for c in conversions)
    late_ids = {e["event_id"] for e in traffic.late_events} & {c[0] for c in expected}
    flagged_late = {c["event_id"] for c in conversions if c["late"]}
    # A replay (after a crash or rebalance) re-emits a conversion as it went out, never with `late` recomputed.
    assert flagged_late == late_ids
    flags = pipe.read("assignment-flags")
    assert {(f["event_id"], f["reason"]) for f in flags} == ref.assignment_flags(exposures)
    switches = {(s["experiment"], s["unit_id"]): s["variants_seen"] for s in pipe.read("variant-switches")}
    assert switches == ref.variant_sets(exposures)
    letters = pipe.wait_for("dead-letters", len(traffic.malformed))
    if exactly_once:
        assert sorted(d["raw"] for d in letters) == sorted(raw for _, raw in traffic.malformed)
    else:  # a replay dead-letters a record again: identical copies, none missing
        assert {d["raw"] for d in letters} == {raw for _, raw in traffic.malformed}
    expected_unattributed = ref.unattributed(exposures, traffic.events + traffic.clock_jump_events, traffic.late_events)
    deadline = time.monotonic() + 120
    while True:  # each partition decides its buffered events on its next sweep, records or not
        unattributed = pipe.read("unattributed-events")
        if {u["event_id"] for u in unattributed} >= expected_unattributed.keys() or time.monotonic() > deadline:
            break
        time.sleep(1)
    if exactly_once:
        assert sorted((u["event_id"], u["reason"]) for u in unattributed) == sorted(expected_unattributed.items())
    else:  # a replay may decide an event again, only identically
        assert {(u["event_id"], u["reason"]) for u in unattributed} == expected_unattributed.items()
    if exactly_once:
        assert all(n == 1 for n in got.values())
        in_send_order = [r for role, r in traffic.sent if role == "exposures"] + traffic.clock_jump
        assert Counter((f["experiment"], f["unit_id"]) for f in firsts) == ref.first_exposure_emissions(in_send_order)
        assert len(letters) == len(traffic.malformed)


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path):
    pipe = Pipeline(kafka_bootstrap, topic_prefix, tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop_all()


def test_a_clean_run_matches_the_reference_exactly(pipeline: Pipeline) -> None:
    traffic = ref.generate(seed=7, units=300)
    pipeline.start("w1")
    _send_traffic(pipeline, traffic)
    _send_late(pipeline, traffic)

    _assert_outputs(pipeline, traffic, exactly_once=True)


def test_kill_9_and_restart_lose_nothing(pipeline: Pipeline) -> None:
    traffic = ref.generate(seed=11, units=300)
    pipeline.start("w1")
    _send_traffic(pipeline, traffic, (0.0, 0.5))
    pipeline.wait_for("first-exposures", 50)
    pipeline.stop("w1", signal.SIGKILL)
    _send_traffic(pipeline, traffic, (0.5, 1.0))
    pipeline.start("w1")
    _send_late(pipeline, traffic)

    _assert_outputs(pipeline, traffic, exactly_once=False)


def test_a_rebalance_when_workers_join_and_leave_loses_nothing(pipeline: Pipeline) -> None:
    traffic = ref.generate(seed=13, units=300)
    pipeline.start("w1")
    _send_traffic(pipeline, traffic, (0.0, 0.4))
    pipeline.wait_for("first-exposures", 50)
    pipeline.start("w2")
    _send_traffic(pipeline, traffic, (0.4, 0.7))
    time.sleep(5)
    pipeline.stop("w1")
    _send_traffic(pipeline, traffic, (0.7, 1.0))
    _send_late(pipeline, traffic)

    _assert_outputs(pipeline, traffic, exactly_once=False)


def _cli(pipe: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abstream", *args], env=pipe.env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_dead_letters_can_be_listed_and_replayed(pipeline: Pipeline) -> None:
    pipeline.start("w1")
    bad = [b"not avro", b"\xc3\x01\x00\x01\x02"]
    for raw in bad:
        pipeline.produce_raw("exposures", raw)
    pipeline.wait_for("dead-letters", 2)

    listed = _cli(pipeline, "deadletters", "list", "--json")
    replayed = _cli(pipeline, "deadletters", "replay", "--kind", "bad_magic")

    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(bytes.fromhex(r["raw"]) for r in rows) == sorted(bad)
    assert {r["source_topic"] for r in rows} == {pipeline.prefix + "exposures"}
    assert replayed.returncode == 0 and "re-injected 1 record" in replayed.stdout
    letters = pipeline.wait_for("dead-letters", 3)
    assert [d["raw"] for d in letters].count(b"not avro") == 2  # back through the job, failing again


def test_the_jobs_refuse_to_run_unless_exposures_and_events_are_co_partitioned(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    skewed = [replace(t, partitions=3) if t.role == "events" else t for t in topics]
    create_topics(admin, skewed)
    env = {**os.environ, "ABSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "ABSTREAM_TOPIC_PREFIX": topic_prefix,
           "ABSTREAM_DATA_DIR": str(tmp_path), "COLUMNS": "200"}  # fmt: skip

    result = subprocess.run(
        [sys.executable, "-m", "abstream", "jobs", "run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "must be co-partitioned" in result.stderr and "'events': 3" in result.stderr
