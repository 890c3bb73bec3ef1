"""``abstream demo``: the seed tutorial's scenario through the whole real pipeline, then the report.

Steps: Kafka (reused, or started locally), a fresh set of topics for this run, the experiment
definitions published, a jobs worker and the sink started in the background, the visitors simulated
through the real ``ExposureLogger``, a wait until the sink's numbers add up, then the report. The jobs
and the sink keep running (the dashboard stays live) until ``abstream demo stop``.

Each run gets its own topic prefix, Faust app and ClickHouse database (``demo_<run id>`` in the
configured store), so a second run never mixes with the first, and ``abstream report`` reaches the
running demo's sink as it reaches any sink. ``abstream demo stop`` drops the databases of older runs.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from abstream.demo.simulate import Send, Truth, simulate
from abstream.errors import AbstreamError
from abstream.settings import Settings
from deploy.services import Service

__all__ = ["DemoOptions", "DemoRun", "drop_old_databases", "stop_demo"]

_ENDPOINT_WAIT_S = 90.0


@dataclass(frozen=True)
class DemoOptions:
    visitors: int = 1000
    seed: int = 42
    faulty_client_rate: float = 0.0
    timeout_s: float = 300.0


class DemoRun:
    """One run of the demo against Kafka at ``bootstrap``; ``progress`` reports (done, total, what)."""

    def __init__(
        self, settings: Settings, bootstrap: str, options: DemoOptions, progress: Callable[[int, int, str], None]
    ) -> None:
        self.settings, self.bootstrap, self.options, self.progress = settings, bootstrap, options, progress
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"demo-{self.run_id}."
        self.directory = settings.data_dir / "demo"
        self.database = f"demo_{self.run_id}"
        self.env = {
            "ABSTREAM_KAFKA_BOOTSTRAP": bootstrap, "ABSTREAM_TOPIC_PREFIX": self.prefix,
            "ABSTREAM_DATA_DIR": str(settings.data_dir), "ABSTREAM_APP_ID": f"abstream-demo-{self.run_id}",
            "ABSTREAM_CLICKHOUSE_URL": settings.clickhouse_url, "ABSTREAM_CLICKHOUSE_DATABASE": self.database,
            "ABSTREAM_SINK_GROUP": f"abstream-demo-sink-{self.run_id}",
        }  # fmt: skip

    def run(self) -> tuple[dict[str, Any], Truth]:
        stop_demo(self.settings)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        (self.directory / "run.json").write_text(json.dumps({"run_id": self.run_id, "database": self.database}))
        self._create_topics()
        self._publish_definitions()
        self._start_services()
        truth = self._simulate()
        return self._wait_for_sink(truth), truth

    # -- setup -----------------------------------------------------------------------------------
    def _create_topics(self) -> None:
        from confluent_kafka.admin import AdminClient

        from deploy.topics import TopicSpec, create_topics

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        old = [t for t in admin.list_topics(timeout=10).topics if t.startswith(("demo-", "abstream-demo-"))]
        if old:
            admin.delete_topics(old)  # earlier runs: freed in the background
        brokers = len(admin.list_topics(timeout=10).brokers)
        create_topics(admin, TopicSpec.load().resolve(prefix=self.prefix, brokers=brokers))

    def _publish_definitions(self) -> None:
        from deploy.definitions_topic import definitions_topic, publish_definitions
        from schemas.definitions import load_definitions

        definitions = load_definitions(_packaged_experiments()).values()
        publish_definitions(definitions, bootstrap_servers=self.bootstrap, topic=definitions_topic(self.prefix))

    def _start_services(self) -> None:
        import os

        env = {**os.environ, **self.env}
        for service in _services(self.settings, env):
            service.start()

    # -- traffic ---------------------------------------------------------------------------------
    def _simulate(self) -> Truth:
        from producers.assigner import Assigner
        from producers.logger import ExposureLogger, Source

        assigner = Assigner.from_dir(_packaged_experiments())
        now = datetime.now(UTC)
        o = self.options
        sends, truth = simulate(assigner, o.visitors, o.seed, o.faulty_client_rate, now)
        source = Source(sdk="abstream-demo", app="moon-mars-shop")
        with ExposureLogger(bootstrap_servers=self.bootstrap, spool_dir=self.directory / "spool",
                            topic_prefix=self.prefix, source=source) as logger:  # fmt: skip
            for i, send in enumerate(sends, 1):
                _log(logger, send)
                if i % 200 == 0 or i == len(sends):
                    self.progress(i, len(sends), "clients logging exposures and clicks")
            if not logger.flush(60):
                raise AbstreamError("the demo's logger could not deliver to Kafka within 60 s")
        return truth

    def _wait_for_sink(self, truth: Truth) -> dict[str, Any]:
        """Poll the sink's report until every unit, converting unit and faulty exposure has arrived (or time runs out).

        Each of these reaches ClickHouse through its own topic and table, so one having arrived says nothing of
        the others: the report is only final once all three add up.
        """
        from sinks.endpoint import get_json, read_endpoint

        deadline = time.monotonic() + self.options.timeout_s
        expected = _expected(truth)
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_services()
            endpoint = read_endpoint(self.settings.data_dir / "sink.json")
            if endpoint is not None and endpoint.database == self.database:
                report = get_json(endpoint, "/api/report", {"policy": "exclude"})
                done = _arrived(report)
                self.progress(min(done, expected), expected, "waiting for the pipeline to reach ClickHouse")
                if done >= expected:
                    return report
            time.sleep(1.0)
        raise AbstreamError(
            f"the pipeline did not catch up within {self.options.timeout_s:.0f}s; "
            f"logs: {self.directory / 'jobs.log'}, {self.directory / 'sink.log'}"
        )

    def _check_services(self) -> None:
        for service in _services(self.settings, None):
            if service.pid() is None:
                raise AbstreamError(f"the demo's {service.name} process stopped:\n{service.tail()}")

    def dashboard_url(self) -> str | None:
        from sinks.endpoint import read_endpoint

        endpoint = read_endpoint(self.settings.data_dir / "sink.json")
        return None if endpoint is None else f"{endpoint.base_url}/"


def _expected(truth: Truth) -> int:
    """What ``_arrived`` counts once the whole truth has reached the report."""
    return sum(truth.units.values()) + sum(truth.converters.values()) + sum(truth.faulty_exposures.values())


def _arrived(report: dict[str, Any]) -> int:
    """Units plus converting units the report counts, over every experiment and variant, plus mismatches."""
    total = 0
    for experiment in report.get("experiments", {}).values():
        total += int(experiment.get("mismatches") or 0)
        for v in experiment.get("variants", {}).values():
            total += int(v.get("units") or 0) + int(v.get("converting_units") or v.get("conversions") or 0)
    return total


def _log(logger: Any, send: Send) -> None:
    if send.kind == "exposure":
        logger.log_exposure(**send.fields)
    else:
        logger.log_event(**send.fields)


def _packaged_experiments() -> Path:
    return Path(str(resources.files("deploy") / "experiments"))


def _services(settings: Settings, env: dict[str, str] | None) -> list[Service]:
    directory = settings.data_dir / "demo"
    python = [sys.executable, "-m", "abstream"]
    return [
        Service("jobs", directory, [*python, "jobs", "run", "--worker-name", "demo", "--loglevel", "warning"], env=env),
        Service("sink", directory, [*python, "sink", "run"], env=env),
    ]


def stop_demo(settings: Settings) -> list[str]:
    """Stop the demo's background processes (by their recorded pids); returns the names stopped."""
    return [s.name for s in _services(settings, None) if s.stop()]


def drop_old_databases(settings: Settings) -> list[str]:
    """Drop the ClickHouse databases of earlier demo runs (keeps the latest run's for ``abstream report``).

    Opens the store, so call it from a short-lived process (``abstream demo stop``), never from the demo.
    """
    from sinks.clickhouse import connect

    try:
        latest = json.loads((settings.data_dir / "demo" / "run.json").read_text())["database"]
    except (OSError, ValueError, KeyError):
        latest = None
    client = connect(settings.clickhouse_url)
    names = [row[0] for row in client.query("SELECT name FROM system.databases WHERE name LIKE 'demo\\_%'").result_rows]
    dropped = [name for name in names if name != latest]
    for name in dropped:
        client.command(f"DROP DATABASE IF EXISTS `{name}`")
    return dropped
