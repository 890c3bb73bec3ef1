"""The exposure logger on a real broker: keyed, decodable records; outages; a killed app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka.admin import AdminClient

from deploy.local_kafka import LocalKafka
from deploy.topics import TopicSpec, create_topics
from producers.logger import ExposureLogger, Source
from schemas.serde import AvroSerde
from tests.conftest import kafka_dist
from tests.integration.test_kafka import consume_all

pytestmark = pytest.mark.integration


def _create_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(admin, TopicSpec.load().resolve(prefix=prefix, brokers=1))


def _event_ids(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> Counter[str]:
    serde = AvroSerde("Exposure")
    return Counter(serde.decode(m.value())["event_id"] for m in consume_all(bootstrap, topic, expected, timeout))


def test_records_arrive_decodable_and_co_partitioned_by_unit(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    _create_topics(kafka_bootstrap, topic_prefix)
    with ExposureLogger(bootstrap_servers=kafka_bootstrap, spool_dir=tmp_path, topic_prefix=topic_prefix) as logger:
        exposure_ids = {
            logger.log_exposure(experiment="moon_mars", revision=2, variant="Mars", unit_id=f"u{i}", params={"i": i})
            for i in range(300)
        }
        for i in range(300):
            logger.log_event(unit_id=f"u{i}", name="click", value=float(i))
        assert logger.flush(30)
        assert logger.stats.sent == 600

    exposures = consume_all(kafka_bootstrap, f"{topic_prefix}exposures", 300)
    events = consume_all(kafka_bootstrap, f"{topic_prefix}events", 300)
    decoded = [AvroSerde("Exposure").decode(m.value()) for m in exposures]
    assert {r["event_id"] for r in decoded} == exposure_ids
    assert all(m.key() == r["unit_id"].encode() for m, r in zip(exposures, decoded, strict=True))
    assert {r["variant"] for r in decoded} == {"Mars"} and decoded[0]["params"]["i"].isdigit()
    # The Java/aiokafka partitioner places each unit where the Faust jobs will look for it.
    for m in exposures + events:
        assert m.partition() == (murmur2(m.key()) & 0x7FFFFFFF) % 6
    exposure_partition = {m.key(): m.partition() for m in exposures}
    assert all(exposure_partition[m.key()] == m.partition() for m in events)


def test_a_server_stamped_record_arrives_with_received_ts_and_its_source(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    _create_topics(kafka_bootstrap, topic_prefix)
    client = Source(sdk="web-sdk", sdk_version="2.1.0", app="shop", host=None)
    with ExposureLogger(bootstrap_servers=kafka_bootstrap, spool_dir=tmp_path, topic_prefix=topic_prefix) as logger:
        logger.log_exposure(experiment="e", revision=1, variant="A", unit_id="u1", received_ts=1_767_225_600_000,
                            source=client)  # fmt: skip
        logger.log_event(unit_id="u1", name="click", received_ts=datetime(2026, 1, 1, tzinfo=UTC), source=client)
        assert logger.flush(30)

    [exposure] = consume_all(kafka_bootstrap, f"{topic_prefix}exposures", 1)
    [event] = consume_all(kafka_bootstrap, f"{topic_prefix}events", 1)
    for message, serde in ((exposure, AvroSerde("Exposure")), (event, AvroSerde("Event"))):
        record = serde.decode(message.value())
        assert record["received_ts"] == 1_767_225_600_000
        assert record["source"] == {"sdk": "web-sdk", "sdk_version": "2.1.0", "app": "shop", "host": None}


class _ThreadsCalling:
    """Stands in for ``target`` and records the threads that look up anything on it."""

    def __init__(self, target: Any, threads: set[int]) -> None:
        self._target, self._threads = target, threads

    def __getattr__(self, name: str) -> Any:
        self._threads.add(threading.get_ident())
        return getattr(self._target, name)

    def __len__(self) -> int:
        self._threads.add(threading.get_ident())
        return len(self._target)


@pytest.fixture
def own_cluster(tmp_path: Path):
    """A broker this test may stop and restart (the session's broker is shared)."""
    cluster = LocalKafka(tmp_path / "kafka", dist=kafka_dist(), base_port=0, heap="256m")
    state = cluster.up()
    _create_topics(state.bootstrap, "abstream.")
    try:
        yield cluster, state
    finally:
        cluster.down()


@pytest.mark.slow
def test_a_broker_outage_spools_without_blocking_and_every_record_arrives_once(own_cluster, tmp_path: Path) -> None:
    cluster, state = own_cluster
    logger = ExposureLogger(bootstrap_servers=state.bootstrap, spool_dir=tmp_path / "spool")
    ids = [logger.log_exposure(experiment="e", revision=1, variant="A", unit_id=f"u{i}") for i in range(200)]
    assert logger.flush(30)

    cluster.stop_node(state.nodes[0])
    # "Never blocks" as a property, not a stopwatch: while Kafka is down the app's thread must not touch
    # the producer or the spool (where a call can wait on the broker or the disk); only the logger's does.
    dispatcher = logger._dispatcher
    producer_threads, spool_threads = set[int](), set[int]()
    dispatcher.producer = _ThreadsCalling(dispatcher.producer, producer_threads)  # type: ignore[assignment]
    dispatcher.spool = _ThreadsCalling(dispatcher.spool, spool_threads)  # type: ignore[assignment]
    for i in range(200, 700):
        ids.append(logger.log_exposure(experiment="e", revision=1, variant="A", unit_id=f"u{i}"))
        time.sleep(0.002)
    app_thread = threading.get_ident()
    assert app_thread not in producer_threads and app_thread not in spool_threads
    assert logger.wait_handed_off(60)  # (which does read them, from this thread)
    assert dispatcher.ident in producer_threads and dispatcher.ident in spool_threads  # both in use meanwhile
    assert not logger.kafka_available and logger.spooled_pending == 500

    cluster.up()
    assert logger.flush(90)
    stats = logger.stats
    logger.close()

    assert stats.sent + stats.replayed == 700 and stats.failed == 0
    assert _event_ids(state.bootstrap, "abstream.exposures", 700) == Counter(ids)  # each exactly once


_APP = """
import sys, time
from producers.logger import ExposureLogger, Source
logger = ExposureLogger(bootstrap_servers=sys.argv[1], spool_dir=sys.argv[2])
with open(sys.argv[3], "w") as out:
    for i in range(500):
        out.write(logger.log_exposure(experiment="e", revision=1, variant="B", unit_id=f"u{i}") + "\\n")
assert logger.wait_handed_off(60) and logger.spooled_pending == 500
print("spooled", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_app_leaves_a_spool_that_the_next_logger_replays(own_cluster, tmp_path: Path) -> None:
    cluster, state = own_cluster
    cluster.stop_node(state.nodes[0])
    ids_file, spool = tmp_path / "ids.txt", tmp_path / "spool"
    with subprocess.Popen(
        [sys.executable, "-c", _APP, state.bootstrap, str(spool), str(ids_file)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).parents[2],
    ) as app:  # fmt: skip
        try:
            assert app.stdout is not None and app.stdout.readline().strip() == "spooled"
        finally:
            os.kill(app.pid, signal.SIGKILL)
    ids = ids_file.read_text().split()
    assert len(ids) == 500

    cluster.up()
    with ExposureLogger(bootstrap_servers=state.bootstrap, spool_dir=spool) as logger:
        assert logger.flush(90)
        assert logger.stats.replayed == 500

    assert _event_ids(state.bootstrap, "abstream.exposures", 500) == Counter(ids)
