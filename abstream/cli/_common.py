"""What the command groups share: settings, consoles, and where Kafka is."""

from __future__ import annotations

import socket
from functools import cache
from typing import Any

from rich.console import Console

from abstream.errors import KafkaSetupError
from abstream.settings import Settings
from deploy.kafka_dist import KafkaDist
from deploy.local_kafka import LocalKafka

__all__ = ["admin_client", "console", "err_console", "local_cluster", "resolve_bootstrap", "settings"]

console = Console()
err_console = Console(stderr=True)


@cache
def settings() -> Settings:
    """The CLI's settings, read from the environment once."""
    return Settings()


def local_cluster(brokers: int | None = None, base_port: int = 9092) -> LocalKafka:
    s = settings()
    return LocalKafka(
        s.local_kafka_dir,
        dist=KafkaDist(s.cache_dir),
        brokers=brokers,
        base_port=base_port,
        heap=s.local_kafka_heap,
    )


def resolve_bootstrap() -> str:
    """ABSTREAM_KAFKA_BOOTSTRAP if set, else the running local cluster, else 127.0.0.1:9092."""
    s = settings()
    if s.kafka_bootstrap:
        return s.kafka_bootstrap
    cluster = local_cluster()
    state = cluster.load_state()
    if state and any(cluster.is_running(n) for n in state.nodes):
        return state.bootstrap
    return "127.0.0.1:9092"


def admin_client(bootstrap: str, *, timeout: float = 10.0) -> tuple[Any, int]:
    """An AdminClient for ``bootstrap`` and the number of brokers answering; a clear error if none do."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    hint = "Start the local cluster with `abstream local up`, or set ABSTREAM_KAFKA_BOOTSTRAP to your cluster."
    if not any(_accepts(address) for address in bootstrap.split(",")):
        raise KafkaSetupError(f"no Kafka broker answers at {bootstrap} (connection refused or timed out). {hint}")
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return admin, len(admin.list_topics(timeout=timeout).brokers)
    except KafkaException as exc:
        raise KafkaSetupError(f"no Kafka broker answers at {bootstrap} ({exc.args[0].str()}). {hint}") from None


def _accepts(address: str, timeout: float = 2.0) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
