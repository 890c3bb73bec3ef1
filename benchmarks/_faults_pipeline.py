"""The fault suite's pipeline: one run's topics, jobs worker and sink as real processes, and how to read it.

Each run gets its own topic prefix, Faust app id, sink group, data dir and chDB path, so runs sharing a
broker never see each other. The jobs and the sink are ``python -m abstream jobs run`` / ``sink run``
processes started from this checkout (``PYTHONPATH``), tracked by pid (``deploy.services``): stopped by
pid, killed by pid. The store is read by a separate short-lived process once the sink has stopped (chDB
lets one process open a path at a time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from abstream.errors import AbstreamError
from deploy.consumer_groups import group_lag, reset_to_earliest
from deploy.definitions_topic import definitions_topic, publish_definitions
from deploy.services import Service
from deploy.topics import TopicSpec, create_topics
from schemas.definitions import load_definitions
from sinks.tables import sink_topics
from stream_jobs.dead_letter_store import read_dead_letters

__all__ = ["ROOT", "Pipeline", "experiments_dir", "read_store"]

ROOT = Path(__file__).resolve().parents[1]
_PYTHON = [sys.executable, "-m", "abstream"]
LATENESS_MS = 10 * 60_000  # the jobs' allowed lateness (their default, set explicitly)
PARTITIONS = 6  # deploy/topics.yaml


def experiments_dir() -> Path:
    return Path(str(resources.files("deploy") / "experiments"))


class Pipeline:
    """One run: topics created, definitions published; the jobs and the sink started on demand."""

    def __init__(self, bootstrap: str, workdir: Path, *, brokers: int = 1) -> None:
        self.bootstrap = bootstrap
        run = uuid.uuid4().hex[:8]
        self.directory = workdir / f"run-{run}"
        self.prefix = f"faults-{run}."
        self.app_id, self.sink_group, self.database = f"faults-jobs-{run}", f"faults-sink-{run}", f"faults_{run}"
        self.clickhouse_url = f"chdb://{self.directory / 'clickhouse'}"
        self.env = {
            **os.environ, "PYTHONPATH": str(ROOT), "ABSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "ABSTREAM_TOPIC_PREFIX": self.prefix, "ABSTREAM_DATA_DIR": str(self.directory / "data"),
            "ABSTREAM_APP_ID": self.app_id, "ABSTREAM_SINK_GROUP": self.sink_group,
            "ABSTREAM_CLICKHOUSE_URL": self.clickhouse_url, "ABSTREAM_CLICKHOUSE_DATABASE": self.database,
            "ABSTREAM_ALLOWED_LATENESS_MS": str(LATENESS_MS), "ABSTREAM_SWEEP_INTERVAL_S": "1",
            # Faust's own setting (60 s by default): a killed worker's partitions are taken over once its
            # session expires. 10 s keeps the suite short; a minute would be inside the lateness too.
            "BROKER_SESSION_TIMEOUT": "10",
        }  # fmt: skip
        jobs = [*_PYTHON, "jobs", "run", "--worker-name", "w1", "--loglevel", "warning"]
        self.services = {
            "jobs": Service("jobs", self.directory, jobs, env=self.env),
            "sink": Service("sink", self.directory, [*_PYTHON, "sink", "run"], env=self.env),
        }
        self.restarts = 0  # services found dead and started again (an outage they did not survive)
        self.created = time.monotonic()
        self.timeline: list[tuple[str, float]] = []  # (what, seconds since created)
        self.directory.mkdir(parents=True)
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        create_topics(admin, TopicSpec.load().resolve(prefix=self.prefix, brokers=brokers))
        definitions = load_definitions(experiments_dir()).values()
        publish_definitions(definitions, bootstrap_servers=bootstrap, topic=definitions_topic(self.prefix))

    def mark(self, what: str) -> None:
        self.timeline.append((what, time.monotonic() - self.created))

    def topic(self, role: str) -> str:
        return self.prefix + role.replace("_", "-")

    # -- processes -------------------------------------------------------------------------------
    def start(self, *names: str) -> None:
        for name in names or tuple(self.services):
            if self.services[name].pid() is None:
                self.services[name].start()

    def stop(self, *names: str) -> None:
        for name in names or tuple(self.services):
            self.services[name].stop(timeout=60)

    def kill(self, name: str) -> None:
        self.services[name].kill()

    def revive(self) -> None:
        """Start again any service that exited on its own (counted in ``restarts``)."""
        for service in self.services.values():
            if service.pid() is None and service.state_file.exists():
                service.state_file.unlink()
                service.start()
                self.restarts += 1

    def log_tail(self, name: str) -> str:
        return self.services[name].tail(40)

    # -- progress --------------------------------------------------------------------------------
    def jobs_lag(self) -> int | None:
        return group_lag(self.bootstrap, self.app_id, [self.topic("exposures"), self.topic("events")])

    def sink_lag(self) -> int | None:
        return group_lag(self.bootstrap, self.sink_group, list(sink_topics(self.prefix)))

    def wait(self, done: Callable[[], bool], what: str, timeout: float, *, revive: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AbstreamError(f"{what} within {timeout:.0f} s; logs in {self.directory}")
            if revive:
                self.revive()
            time.sleep(0.5)

    def wait_jobs(self, timeout: float, *, revive: bool = True) -> None:
        """Until the jobs have committed the end of their inputs (outputs are flushed before a commit)."""
        self.wait(lambda: self.jobs_lag() == 0, "the jobs did not catch up", timeout, revive=revive)

    def settle(self, timeout: float) -> None:
        """Everything logged through the jobs and into the store; then both stopped (the store can be read)."""
        self.wait_jobs(timeout)
        self.mark("jobs done")
        self.stop("jobs")
        self.mark("jobs stopped")
        self.start("sink")
        self.wait(lambda: self.sink_lag() == 0, "the sink did not catch up", timeout, revive=True)
        self.mark("sink done")
        self.stop("sink")
        self.mark("sink stopped")

    # -- replays ---------------------------------------------------------------------------------
    def replay_jobs(self, timeout: float) -> None:
        """As an operator would: the worker stopped, its group reset to the start of its inputs, started again."""
        self.stop("jobs")
        reset_to_earliest(self.bootstrap, self.app_id, [self.topic("exposures"), self.topic("events")])
        self.start("jobs")
        self.settle(timeout)

    def replay_sink(self, timeout: float) -> None:
        self.stop("sink")
        reset_to_earliest(self.bootstrap, self.sink_group, list(sink_topics(self.prefix)))
        self.start("sink")
        self.wait(lambda: self.sink_lag() == 0, "the sink did not catch up", timeout, revive=True)
        self.stop("sink")

    # -- reading ---------------------------------------------------------------------------------
    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter once (a replay may send one twice: its source position identifies it)."""
        rows = read_dead_letters(self.bootstrap, self.topic("dead_letters"), limit=10**9, timeout=10)
        unique = {(r["source_topic"], r["source_partition"], r["source_offset"]): r for _, r in rows}
        return list(unique.values())

    def snapshot(self) -> dict[str, Any]:
        """The report under both policies and the aggregates, read by a process of its own (the sink stopped)."""
        script = str(ROOT / "benchmarks" / "faults.py")
        command = [sys.executable, script, "snapshot", self.clickhouse_url, self.database]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            raise AbstreamError(f"reading the store failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout)


_AGGREGATES = {
    "exposure_stats": "SELECT experiment, variant, sum(units), sum(exposures) FROM {t} GROUP BY experiment, variant",
    "metric_stats": "SELECT experiment, metric, variant, sum(nonzero), sum(sum_x), sum(sum_y) FROM {t} "
    "GROUP BY experiment, metric, variant",
}


def read_store(clickhouse_url: str, database: str) -> dict[str, Any]:
    """The report (both policies) and the aggregate tables summed per experiment, variant (and metric)."""
    from sinks.clickhouse import connect
    from sinks.report import fetch_report

    client = connect(clickhouse_url, database=database)
    report = {policy: fetch_report(client, None, policy=policy) for policy in ("first_seen", "exclude")}
    aggregates = {}
    for base, sql in _AGGREGATES.items():
        for table in (base, f"multi_{base}"):
            aggregates[table] = [list(row) for row in client.query(sql.format(t=table)).result_rows]
    return {"report": report, "aggregates": aggregates}
