"""``abstream local``: idempotent up, down by pid, and a 3-broker cluster that survives losing a broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.local_kafka import LocalKafka
from tests.conftest import kafka_dist
from tests.integration.test_kafka import consume_all

pytestmark = pytest.mark.integration


def _abstream(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ABSTREAM_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("ABSTREAM_KAFKA_BOOTSTRAP", None)
    return subprocess.run(
        [sys.executable, "-m", "abstream", *args], env=env, capture_output=True, text=True, timeout=180
    )


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except OSError:
        return False


def test_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    cluster = LocalKafka(tmp_path / "kafka", dist=kafka_dist())
    try:
        first = _abstream(tmp_path, "local", "up", "--port", "0")
        assert first.returncode == 0, first.stdout + first.stderr
        pids = [n.pid for n in cluster.load_state().nodes]

        second = _abstream(tmp_path, "local", "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already running" in second.stdout
        assert [n.pid for n in cluster.load_state().nodes] == pids
        assert _abstream(tmp_path, "local", "status").returncode == 0

        down = _abstream(tmp_path, "local", "down")
        assert down.returncode == 0
        assert not any(_alive(p) for p in pids)
        assert _abstream(tmp_path, "local", "status").returncode == 1
    finally:
        cluster.down()


@pytest.mark.slow
def test_three_brokers_stay_writable_with_one_down(tmp_path: Path) -> None:
    cluster = LocalKafka(tmp_path / "kafka", dist=kafka_dist(), brokers=3, base_port=0, heap="256m")
    try:
        state = cluster.up()
        admin = AdminClient({"bootstrap.servers": state.bootstrap})
        topic = NewTopic("replicated", 3, 3, config={"min.insync.replicas": "2"})
        admin.create_topics([topic])["replicated"].result(timeout=30)

        assert cluster.stop_node(state.nodes[2])
        producer = Producer(
            {
                "bootstrap.servers": state.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 60000,
            }
        )
        errors = []
        for i in range(300):
            producer.produce(
                "replicated", key=str(i % 10), value=str(i), on_delivery=lambda e, m: e and errors.append(e)
            )
        assert producer.flush(90) == 0
        assert errors == []

        got = consume_all(state.bootstrap, "replicated", expected=300, timeout=60)
        assert sorted(int(m.value()) for m in got) == list(range(300))
    finally:
        cluster.down()
    assert not any(_alive(n.pid) for n in state.nodes if n.pid)
