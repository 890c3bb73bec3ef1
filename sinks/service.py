"""The sink process wired together: Kafka clients, ClickHouse, the worker, the API and ``sink.json``.

stop = threading.Event()
run_sink(SinkSettings(), bootstrap="127.0.0.1:9092", stop=stop)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from abstream.errors import SinkError
from sinks.aggregates import UnitAggregates
from sinks.batching import Batch
from sinks.clickhouse import connect
from sinks.dead_letters import DeadLetterWriter
from sinks.endpoint import SinkEndpoint, remove_endpoint, write_endpoint
from sinks.ledger import BatchLedger
from sinks.migrator import migrate
from sinks.report import fetch_report
from sinks.settings import SinkSettings
from sinks.tables import sink_topics
from sinks.worker import SinkStats, SinkWorker

__all__ = ["build_worker", "consumer_config", "run_sink"]

log = logging.getLogger(__name__)


def consumer_config(bootstrap: str, group: str) -> dict[str, Any]:
    """Manual commits only after an insert; EOF events tell the worker when it has caught up."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "abstream-sink",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    }


def build_worker(
    *,
    bootstrap: str,
    topic_prefix: str,
    group: str,
    client: Any,
    max_rows: int = 5000,
    interval: float = 1.0,
    retry_max: float = 30.0,
    after_insert: Callable[[Batch], None] | None = None,
) -> SinkWorker:
    """A worker on its own consumer and dead-letter producer; SinkError if a topic is missing."""
    from confluent_kafka import Consumer, Producer

    topics = sink_topics(topic_prefix)
    consumer = Consumer(consumer_config(bootstrap, group))
    _check_topics(consumer, [*topics, f"{topic_prefix}dead-letters"])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    return SinkWorker(
        consumer=consumer,
        client=client,
        topics=topics,
        ledger=BatchLedger(client),
        dead_letters=DeadLetterWriter(producer, f"{topic_prefix}dead-letters"),
        max_rows=max_rows,
        interval=interval,
        retry_max=retry_max,
        after_insert=after_insert,
        aggregates=UnitAggregates(client),
    )


def _check_topics(consumer: Any, names: list[str]) -> None:
    existing = consumer.list_topics(timeout=15).topics
    missing = [name for name in names if name not in existing]
    if missing:
        consumer.close()
        raise SinkError(f"topics {', '.join(missing)} do not exist: run `abstream topics create` first")


def run_sink(settings: SinkSettings, *, bootstrap: str, stop: threading.Event, until_idle: bool = False) -> SinkStats:
    """Migrate, then consume until ``stop`` (or caught up), serving the API meanwhile."""
    from sinks.dashboard import DashboardData
    from sinks.server import ApiServer, build_app

    client = connect(settings.clickhouse_url, database=settings.clickhouse_database)
    for migration in migrate(client):
        log.info("applied migration %s", migration.filename)
    worker = build_worker(
        bootstrap=bootstrap,
        topic_prefix=settings.topic_prefix,
        group=settings.sink_group,
        client=client,
        max_rows=settings.sink_batch_rows,
        interval=settings.sink_batch_interval_s,
        retry_max=settings.sink_retry_max_s,
    )
    api_client = connect(settings.clickhouse_url, database=settings.clickhouse_database)
    report = functools.partial(_report, api_client)
    app = build_app(
        report=report,
        health=lambda: _health(worker),
        default_policy=settings.multi_variant_policy,
        dashboard=DashboardData(api_client),
    )
    server = ApiServer(app, host=settings.sink_api_host, port=settings.sink_api_port)
    endpoint = SinkEndpoint(
        os.getpid(), settings.sink_api_host, server.start(), settings.clickhouse_url, settings.clickhouse_database
    )
    write_endpoint(settings.endpoint_file, endpoint)
    try:
        return worker.run(stop=stop, stop_when_idle=until_idle)
    finally:
        remove_endpoint(settings.endpoint_file, endpoint.pid)
        server.stop()


def _report(client: Any, experiment: str | None, policy: Any, metric: str | None = None) -> dict[str, Any]:
    return fetch_report(client, experiment, policy=policy, metric=metric)


def _health(worker: SinkWorker) -> dict[str, Any]:
    return {"pid": os.getpid(), **dataclasses.asdict(worker.stats)}
