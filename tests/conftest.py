"""Fixtures that start the real parts: an Apache Kafka broker and an embedded ClickHouse (chDB).

Backends, chosen by environment:
- default: a 1-broker KRaft cluster started with ``java`` on free loopback ports in a temp dir, stopped
  by pid at the end of the session; chDB in a temp dir (one path per process, a fresh database per test);
- ``ABSTREAM_KAFKA_BOOTSTRAP=host:port``: use that existing cluster instead of starting one;
- ``ABSTREAM_TEST_BACKEND=containers``: Kafka and a ClickHouse server in Docker via testcontainers
  (needs a Docker engine; the run fails, never skips, without one).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abstream.settings import default_cache_dir
from deploy.kafka_dist import KafkaDist
from deploy.local_kafka import LocalKafka

_BACKEND = os.environ.get("ABSTREAM_TEST_BACKEND", "local")


def kafka_dist() -> KafkaDist:
    """The broker jars, cached across runs (``make test`` fetches them before pytest starts)."""
    return KafkaDist(Path(os.environ.get("ABSTREAM_CACHE_DIR") or default_cache_dir()))


def _containers() -> Any:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        raise RuntimeError(f"ABSTREAM_TEST_BACKEND=containers needs a running Docker engine: {exc}") from exc
    import testcontainers.clickhouse
    import testcontainers.kafka

    return testcontainers


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real Kafka cluster for this test session."""
    if existing := os.environ.get("ABSTREAM_KAFKA_BOOTSTRAP"):
        yield existing
    elif _BACKEND == "containers":
        with _containers().kafka.KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        cluster = LocalKafka(tmp_path_factory.mktemp("kafka"), dist=kafka_dist(), brokers=1, base_port=0, heap="384m")
        try:
            yield cluster.up().bootstrap
        finally:
            cluster.down()


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ClickHouse URL: chDB under a temp dir, or a server container with the containers backend."""
    if _BACKEND == "containers":
        with _containers().clickhouse.ClickHouseContainer() as ch:
            host, port = ch.get_container_host_ip(), ch.get_exposed_port(8123)
            yield f"http://{ch.username}:{ch.password}@{host}:{port}"
    else:
        yield f"chdb://{tmp_path_factory.mktemp('clickhouse')}"


@pytest.fixture
def clickhouse(clickhouse_url: str) -> Any:
    """A clickhouse-connect client bound to a fresh database (chDB allows one store per process)."""
    from sinks.clickhouse import connect

    return connect(clickhouse_url, database=f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix, so tests sharing a cluster never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}."
