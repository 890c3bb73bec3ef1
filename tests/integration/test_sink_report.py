"""``abstream sink run`` as its own process, and ``abstream report`` from another one while it holds chDB.

The pytest process holds the session's chDB store (one store per process), so the sink subprocess
gets its own data dir and store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from deploy.topics import TopicSpec, create_topics
from sinks.endpoint import read_endpoint
from tests.integration.test_sink import Sink, publish
from tests.unit.sinks.scenario import build_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def abstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abstream", *args], env=env, capture_output=True, text=True, timeout=120
    )


def wait_until_caught_up(endpoint_file: Path, records: int, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sink exited early"
        endpoint = read_endpoint(endpoint_file)
        if endpoint is not None:
            with urllib.request.urlopen(f"{endpoint.base_url}/healthz", timeout=10) as response:
                health: dict[str, Any] = json.load(response)
            if health["idle"] and health["records"] >= records:
                return health
        time.sleep(0.5)
    raise AssertionError("the sink did not catch up within 120 s")


def test_report_asks_the_running_sink_and_matches_the_store_read_directly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    create_topics(
        AdminClient({"bootstrap.servers": kafka_bootstrap}), TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    )
    scenario = build_scenario(units=150)
    publish(Sink(kafka_bootstrap, topic_prefix, None, ""), scenario.records)
    data_dir = tmp_path / "data"
    env = {
        **os.environ, "ABSTREAM_DATA_DIR": str(data_dir), "ABSTREAM_CLICKHOUSE_URL": f"chdb://{data_dir / 'ch'}",
        "ABSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "ABSTREAM_TOPIC_PREFIX": topic_prefix,
        "ABSTREAM_SINK_GROUP": f"sink-{uuid.uuid4().hex[:8]}", "ABSTREAM_SINK_BATCH_INTERVAL_S": "0.2",
    }  # fmt: skip
    log = (tmp_path / "sink.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "abstream", "sink", "run"], env=env, stdout=log, stderr=log)
    try:
        health = wait_until_caught_up(data_dir / "sink.json", sum(map(len, scenario.records.values())), proc)
        through_sink = abstream(env, "report", "--json")
        text = abstream(env, "report", "moon_mars")
        locked = abstream(env, "sink", "migrate")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
    direct = abstream(env, "report", "--json")

    assert code == 0, (tmp_path / "sink.log").read_text()
    assert health["pid"] == proc.pid and health["dead_letters"] == 0
    assert through_sink.returncode == 0, through_sink.stderr
    assert direct.returncode == 0, direct.stderr
    assert json.loads(through_sink.stdout) == json.loads(direct.stdout)
    report = json.loads(direct.stdout)["experiments"]
    for key, want in scenario.expected("exclude").items():
        for name, counts in want["variants"].items():
            assert report[key]["variants"][name]["units"] == counts["units"]
            assert report[key]["variants"][name]["conversions"] == counts["conversions"]
        assert report[key]["multi_variant_units"] == want["multi_variant_units"]
    assert "Moon: " in text.stdout and "Conv=" in text.stdout and "SRM: p=" in text.stdout, text.stdout
    assert locked.returncode == 1 and f"pid {proc.pid}" in locked.stderr
    assert not (data_dir / "sink.json").exists()
