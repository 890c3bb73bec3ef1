"""The Faust app: broker, durable table store, processing guarantee, and the start-up checks.

Processing guarantee: **at-least-once with idempotent state and outputs.** Faust flushes the producer
(outputs and table changelogs) before it commits offsets, so nothing is lost; after a crash or a
rebalance the records since the last commit are processed again, and the per-unit state ignores what
it already applied while re-emitting identical outputs (see ``stream_jobs.processor``). Every output is
keyed (unit id) and carries its identity (event id, experiment), so the sink's replacing tables absorb
the duplicates. We chose this over Faust's Kafka-transaction mode: it needs no transactional producer
per partition and survives a ``kill -9`` with nothing more than duplicates downstream.

Outputs and changelogs are produced through librdkafka (``stream_jobs.producer``), not aiokafka; the
consumer seeks to the committed offsets with the flow stopped (``stream_jobs.consumer``).

    app = create_app(settings, preflight(settings))
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Any

import faust
from confluent_kafka.admin import AdminClient

from abstream.errors import KafkaSetupError
from stream_jobs.consumer import SeekSafeConsumer
from stream_jobs.producer import LibrdkafkaProducer
from stream_jobs.settings import JobsSettings

__all__ = ["Preflight", "create_app", "preflight"]

log = logging.getLogger("abstream.stream_jobs")


@dataclass(frozen=True)
class Preflight:
    """What the start-up checks learned about the cluster."""

    partitions: int
    brokers: int


def preflight(settings: JobsSettings, timeout: float = 15.0) -> Preflight:
    """Refuse to run unless the input and output topics exist and exposures/events are co-partitioned."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "logger": log})  # type: ignore[dict-item]
    metadata = admin.list_topics(timeout=timeout)
    roles = ("exposures", "events", "first_exposures", "experiment_definitions", "variant_switches",
             "assignment_flags", "attributed_conversions", "unattributed_events", "dead_letters")  # fmt: skip
    missing = [settings.topic(r) for r in roles if settings.topic(r) not in metadata.topics]
    if missing:
        raise KafkaSetupError(f"missing topics {missing} on {settings.kafka_bootstrap}: run `abstream topics create`")
    counts = {r: len(metadata.topics[settings.topic(r)].partitions) for r in ("exposures", "events", "first_exposures")}
    if len(set(counts.values())) != 1:
        raise KafkaSetupError(
            f"exposures and events must be co-partitioned (same partition count, keyed by unit id), but {counts}: "
            "a unit's events would be joined on another worker than its exposures. Recreate the topics from "
            "deploy/topics.yaml."
        )
    cluster = Preflight(partitions=counts["exposures"], brokers=len(metadata.brokers))
    _ensure_changelog(admin, settings, cluster, timeout)
    return cluster


def _ensure_changelog(admin: AdminClient, settings: JobsSettings, cluster: Preflight, timeout: float) -> None:
    """Create the ``units`` table's changelog topic as Faust would, and wait until its partitions are served.

    Faust declares it at start-up, but its consumer may not see a topic just created when the first records
    come: on a new app id each of them then failed with PartitionsMismatch ("the changelog topic has 0
    partitions") and was dead-lettered as ``processing_error``, its offset committed — valid records lost
    (85 of a fault-suite run). An existing changelog is left as it is.
    """
    from deploy.topics import ResolvedTopic, create_topics

    name = f"{settings.app_id}-units-changelog"  # Faust's name for the table "units" (stream_jobs.unit_agent)
    rf = min(3, cluster.brokers)
    spec = ResolvedTopic("units_changelog", name, cluster.partitions, rf, {"cleanup.policy": "compact"})
    create_topics(admin, [spec], timeout=timeout)


def create_app(settings: JobsSettings, cluster: Preflight) -> faust.App:
    """A Faust app for one worker; ``stream_jobs.unit_agent.install`` adds the agent and its table."""
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": [f"kafka://{address}" for address in settings.kafka_bootstrap.split(",")],
        "store": "rocksdb://",
        "datadir": str(settings.worker_dir),
        "processing_guarantee": "at_least_once",
        "topic_partitions": cluster.partitions,
        "topic_replication_factor": min(3, cluster.brokers),
        "broker_commit_interval": settings.commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger": 0.002,
        "topic_allow_declare": True,
        "web_enabled": settings.web_port is not None,
        "web_port": settings.web_port or 6066,
        "table_standby_replicas": 0,
    }
    return _App(settings.app_id, **options)


class _App(faust.App):
    """Faust, with outputs and changelogs produced through librdkafka (see ``stream_jobs.producer``) and
    seeks that no fetched record races (see ``stream_jobs.consumer``)."""

    def _new_producer(self) -> LibrdkafkaProducer:
        return LibrdkafkaProducer(self.transport, loop=self.loop, beacon=self.beacon)

    def _new_consumer(self) -> SeekSafeConsumer:
        return SeekSafeConsumer(
            self.transport, callback=self.topics.on_message, on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon, loop=self.transport.loop,
        )  # fmt: skip

    async def on_started(self) -> None:
        await super().on_started()
        # Everything built at start-up lives as long as the worker: without this, every full collection
        # walks it again (measured: 35-60 ms pauses every few seconds under load, finding nothing).
        gc.freeze()
