"""The declarative topic spec (``deploy/topics.yaml``) and the code that applies it to a cluster.

spec = TopicSpec.load()
results = create_topics(admin, spec.resolve(prefix="abstream.", brokers=3))
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from abstream.errors import ConfigError, KafkaSetupError

__all__ = ["ResolvedTopic", "TopicResult", "TopicSpec", "create_topics", "describe_topics"]

Auto = Literal["auto"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Defaults(_Strict):
    partitions: int = Field(default=6, ge=1)
    replication_factor: int | Auto = "auto"
    config: dict[str, str | int] = Field(default_factory=dict)


class _Topic(_Strict):
    doc: str = ""
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | Auto | None = None
    config: dict[str, str | int] = Field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedTopic:
    """A topic as it must exist on one cluster: full name, partitions, RF and configs."""

    role: str
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


class TopicSpec(_Strict):
    defaults: _Defaults = Field(default_factory=_Defaults)
    co_partitioned: list[list[str]] = Field(default_factory=list)
    topics: dict[str, _Topic]

    @classmethod
    def load(cls, path: Path | None = None) -> TopicSpec:
        path = path or Path(str(resources.files("deploy") / "topics.yaml"))
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except ValidationError as exc:
            raise ConfigError(f"{path}: invalid topic spec:\n{exc}") from exc

    @model_validator(mode="after")
    def _check_co_partitioning(self) -> TopicSpec:
        for group in self.co_partitioned:
            unknown = [role for role in group if role not in self.topics]
            if unknown:
                raise ValueError(f"co_partitioned names unknown topics {unknown}")
            counts = {role: self.partitions_of(role) for role in group}
            if len(set(counts.values())) > 1:
                raise ValueError(f"co-partitioned topics must have the same partition count, got {counts}")
        return self

    def partitions_of(self, role: str) -> int:
        return self.topics[role].partitions or self.defaults.partitions

    def resolve(self, *, prefix: str, brokers: int) -> list[ResolvedTopic]:
        """Fill in defaults and ``auto`` values for a cluster of ``brokers`` brokers."""
        return [self._resolve_one(role, topic, prefix, brokers) for role, topic in self.topics.items()]

    def _resolve_one(self, role: str, topic: _Topic, prefix: str, brokers: int) -> ResolvedTopic:
        declared = topic.replication_factor or self.defaults.replication_factor
        rf = min(3, brokers) if declared == "auto" else declared
        if rf > brokers:
            raise ConfigError(f"topic {role!r}: replication_factor {rf} exceeds the {brokers} broker(s) available")
        config = {**self.defaults.config, **topic.config}
        if config.get("min.insync.replicas") == "auto":
            config["min.insync.replicas"] = max(1, rf - 1)
        return ResolvedTopic(
            role=role,
            name=prefix + role.replace("_", "-"),
            partitions=self.partitions_of(role),
            replication_factor=rf,
            config={k: str(v) for k, v in config.items()},
        )


@dataclass(frozen=True)
class TopicResult:
    topic: ResolvedTopic
    status: Literal["created", "exists", "differs"]
    detail: str = ""


def describe_topics(admin: Any, names: list[str], *, timeout: float = 10.0) -> dict[str, tuple[int, dict[str, str]]]:
    """Partition count and non-default configs of each existing topic among ``names``."""
    from confluent_kafka.admin import ConfigResource

    metadata = admin.list_topics(timeout=timeout).topics
    existing = [n for n in names if n in metadata and metadata[n].error is None]
    if not existing:
        return {}
    resources_ = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in existing]
    futures = admin.describe_configs(resources_, request_timeout=timeout)
    out = {}
    for resource, future in futures.items():
        entries = future.result(timeout=timeout)
        configs = {k: e.value for k, e in entries.items() if not e.is_default}
        out[resource.name] = (len(metadata[resource.name].partitions), configs)
    return out


def _differences(topic: ResolvedTopic, partitions: int, configs: Mapping[str, str]) -> str:
    diffs = [f"partitions {partitions} (spec {topic.partitions})"] if partitions != topic.partitions else []
    diffs += [f"{k}={configs.get(k)!r} (spec {v!r})" for k, v in topic.config.items() if configs.get(k) != v]
    return ", ".join(diffs)


def create_topics(admin: Any, topics: list[ResolvedTopic], *, timeout: float = 30.0) -> list[TopicResult]:
    """Create missing topics; report existing ones as matching the spec or differing (never altered)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    current = describe_topics(admin, [t.name for t in topics], timeout=timeout)
    results = []
    missing = [t for t in topics if t.name not in current]
    if missing:
        new = [NewTopic(t.name, t.partitions, t.replication_factor, config=dict(t.config)) for t in missing]
        for name, future in admin.create_topics(new, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                raise KafkaSetupError(f"creating topic {name!r} failed: {exc.args[0].str()}") from exc
        _wait_visible(admin, [t.name for t in missing], timeout)
        results += [TopicResult(t, "created") for t in missing]
    for topic in topics:
        if topic.name in current:
            detail = _differences(topic, *current[topic.name])
            results.append(TopicResult(topic, "differs" if detail else "exists", detail))
    return results


def _wait_visible(admin: Any, names: list[str], timeout: float) -> None:
    """Until every partition of the new topics has a leader that serves it: created is not yet usable.

    A leader in the metadata is not enough: the broker may name itself leader before it has created the
    partition's log, and an idempotent producer's first batch sent then was seen lost for good (the broker
    took the producer's next batch, sequence 2, as its first; the logger reported no failure and spooled
    nothing). Answering ListOffsets for a partition takes the log to exist on its leader.
    """
    from confluent_kafka import KafkaException, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            n in topics and topics[n].error is None and all(p.leader >= 0 for p in topics[n].partitions.values())
            for n in names
        ):
            request = {TopicPartition(n, p): OffsetSpec.latest() for n in names for p in topics[n].partitions}
            try:
                for future in admin.list_offsets(request, request_timeout=timeout).values():
                    future.result()
                return
            except KafkaException:
                pass  # a partition's log is not there yet
        time.sleep(0.1)
    raise KafkaSetupError(f"topics {names} were created but their partitions were not served within {timeout:.0f}s")
