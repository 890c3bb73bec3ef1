"""The compacted ``experiment-definitions`` topic: every published revision, read whole or appended to.

Each revision is one record keyed ``"<key>:<revision>"``, Avro single-object encoded; compaction keeps
the last record per key, so every revision stays readable forever. The CLI and the
:class:`~producers.assigner.Assigner` read the topic with :class:`DefinitionStore` (the stream jobs keep
a Faust table instead).

    store = DefinitionStore.read(bootstrap_servers="127.0.0.1:9092", topic=definitions_topic("abstream."))
    plans = plan_publish(load_definitions(Path("deploy/experiments")).values(), store)
    publish_records([p.definition.to_record() for p in plans if p.action == "publish"], ...)

:func:`plan_publish` holds the rules: a published revision never changes (the same content again is a
no-op, other content is refused), revisions only go up, and a new revision must pass
:func:`~schemas.definition_changes.check_transition` against the latest published one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from abstream.errors import DecodeError, DefinitionError, DefinitionsTopicError
from schemas.definition_changes import Change, check_transition, errors_of
from schemas.definitions import Definition
from schemas.models import ExperimentDefinition
from schemas.serde import AvroSerde

__all__ = [
    "DefinitionStore",
    "PublishPlan",
    "Skipped",
    "definitions_topic",
    "plan_publish",
    "publish_definitions",
    "publish_records",
]

Revision = tuple[str, int]
_ELECTING = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)


def definitions_topic(prefix: str) -> str:
    """The topic's name under a prefix, as ``deploy/topics.yaml`` names role ``experiment_definitions``."""
    return f"{prefix}experiment-definitions"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record of the topic that is not a valid definition (kept out of the store, reported)."""

    partition: int
    offset: int
    reason: str


class DefinitionStore:
    """Published definitions by ``(key, revision)``; ``skipped`` lists the records that were unreadable."""

    def __init__(self, records: Mapping[Revision, ExperimentDefinition], skipped: Sequence[Skipped] = ()) -> None:
        self._records = dict(records)
        self.skipped = list(skipped)

    @classmethod
    def read(
        cls, *, bootstrap_servers: str, topic: str, timeout: float = 30.0, config: Mapping[str, Any] | None = None
    ) -> DefinitionStore:
        """Read the whole topic, up to the high watermarks of when the read started."""
        records: dict[Revision, ExperimentDefinition] = {}
        skipped: list[Skipped] = []
        serde = AvroSerde("ExperimentDefinition")
        for message in _messages(bootstrap_servers, topic, timeout, config or {}):
            _apply(message, serde, records, skipped)
        return cls(records, skipped)

    @property
    def records(self) -> dict[Revision, ExperimentDefinition]:
        return dict(self._records)

    def get(self, key: str, revision: int) -> ExperimentDefinition | None:
        return self._records.get((key, revision))

    def revisions(self, key: str) -> list[int]:
        """The published revisions of ``key``, ascending."""
        return sorted(revision for k, revision in self._records if k == key)

    def latest(self) -> dict[str, ExperimentDefinition]:
        """The highest published revision of every experiment, by key."""
        out: dict[str, ExperimentDefinition] = {}
        for (key, _), record in sorted(self._records.items()):
            out[key] = record
        return out

    def __len__(self) -> int:
        return len(self._records)


def _apply(
    message: Message, serde: AvroSerde, records: dict[Revision, ExperimentDefinition], skipped: list[Skipped]
) -> None:
    key = (message.key() or b"").decode("utf-8", "replace")
    value = message.value()
    if value is None:  # a tombstone retracts the revision
        name, _, number = key.rpartition(":")
        if number.isdigit():
            records.pop((name, int(number)), None)
        return
    try:
        record = ExperimentDefinition.from_avro(serde.decode(value, topic=message.topic()))
    except (DecodeError, ValidationError) as exc:
        skipped.append(Skipped(message.partition() or 0, message.offset() or 0, f"key {key!r}: {exc}"))
        return
    if key != f"{record.key}:{record.revision}":
        reason = f"key {key!r} does not name the record it holds ({record.key}:{record.revision})"
        skipped.append(Skipped(message.partition() or 0, message.offset() or 0, reason))
        return
    records[(record.key, record.revision)] = record


def _messages(bootstrap: str, topic: str, timeout: float, config: Mapping[str, Any]) -> Iterator[Message]:
    consumer = Consumer(
        {
            "group.id": f"abstream-definitions-{uuid.uuid4()}",  # never committed: assign() reads from the start
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **config,
            "bootstrap.servers": bootstrap,
        }
    )
    try:
        yield from _read_to_end(consumer, topic, time.monotonic() + timeout)
    finally:
        consumer.close()


def _read_to_end(consumer: Consumer, topic: str, deadline: float) -> Iterator[Message]:
    partitions = _partitions(consumer, topic, deadline)
    ends = {p: _watermarks(consumer, TopicPartition(topic, p), deadline) for p in partitions}
    todo = {p for p, (low, high) in ends.items() if high > low}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
    while todo:
        message = consumer.poll(min(1.0, _left(deadline, topic)))
        if message is None:
            continue
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            raise DefinitionsTopicError(f"reading {topic}: {error.str()}", topic=topic)
        if error is None:
            yield message
        partition, offset = message.partition() or 0, message.offset() or 0
        if error is not None or offset >= ends[partition][1] - 1:
            todo.discard(partition)


def _watermarks(consumer: Consumer, partition: TopicPartition, deadline: float) -> tuple[int, int]:
    """Low and high watermarks, waiting out a leader election (a topic created a moment ago has none yet)."""
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=_left(deadline, partition.topic))
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _ELECTING):
                raise DefinitionsTopicError(
                    f"reading {partition.topic}: {error.str()}", topic=partition.topic
                ) from None
        time.sleep(0.1)


def _partitions(client: Consumer | Producer, topic: str, deadline: float) -> list[int]:
    try:
        metadata = client.list_topics(timeout=_left(deadline, topic))  # all topics: never auto-creates ours
    except KafkaException as exc:
        raise DefinitionsTopicError(f"cannot reach Kafka to read {topic}: {exc.args[0].str()}", topic=topic) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise DefinitionsTopicError(
            f"topic {topic} does not exist; create the pipeline's topics with `abstream topics create`", topic=topic
        )
    return sorted(found.partitions)


def _left(deadline: float, topic: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DefinitionsTopicError(f"timed out waiting for Kafka on {topic}", topic=topic)
    return left


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """What publishing ``definition`` would do: ``publish``, nothing (``unchanged``) or ``refused``.

    ``changes`` are against ``against`` (the published revision compared with); ``problems`` say why
    a plan is refused.
    """

    definition: Definition
    action: Literal["publish", "unchanged", "refused"]
    changes: tuple[Change, ...] = ()
    problems: tuple[str, ...] = ()
    against: int | None = None


def plan_publish(definitions: Iterable[Definition], store: DefinitionStore) -> list[PublishPlan]:
    """The plan for each definition against what ``store`` holds (see the module docstring)."""
    return [_plan(definition, store) for definition in definitions]


def _plan(definition: Definition, store: DefinitionStore) -> PublishPlan:
    same = store.get(definition.key, definition.revision)
    if same is not None:
        return _republish(definition, same)
    published = store.revisions(definition.key)
    if not published:
        return PublishPlan(definition, "publish")
    latest = store.get(definition.key, published[-1])
    assert latest is not None  # one of its revisions
    changes = tuple(check_transition(latest, definition))
    problems = tuple(errors_of(changes))
    return PublishPlan(definition, "refused" if problems else "publish", changes, problems, latest.revision)


def _republish(definition: Definition, same: ExperimentDefinition) -> PublishPlan:
    """The same key and revision again: a no-op when identical, refused otherwise."""
    if same.definition_hash == definition.digest():
        return PublishPlan(definition, "unchanged", against=same.revision)
    changes = tuple(check_transition(same, definition))
    summary = "; ".join(change.summary for change in changes)
    problems = errors_of(changes) or [
        f"revision {same.revision} of {same.key!r} is already published with other content ({summary}); "
        "a published revision never changes: bump the revision"
    ]
    return PublishPlan(definition, "refused", changes, tuple(problems), same.revision)


def publish_records(
    records: Sequence[ExperimentDefinition], *, bootstrap_servers: str, topic: str, timeout: float = 30.0
) -> None:
    """Produce ``records`` keyed ``"<key>:<revision>"`` with acks=all and wait until Kafka has them all."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True})
    _partitions(producer, topic, time.monotonic() + timeout)  # a missing topic would be auto-created uncompacted
    serde, failures = AvroSerde("ExperimentDefinition"), []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(f"{message.key()!r}: {error.str()}")

    for record in records:
        key = f"{record.key}:{record.revision}".encode()
        producer.produce(topic, key=key, value=serde.encode(record.to_avro()), on_delivery=delivered)
    left = producer.flush(timeout)
    if left or failures:
        problem = "; ".join(failures) or f"{left} record(s) not acknowledged within {timeout:g}s"
        raise DefinitionsTopicError(f"publishing to {topic} failed: {problem}", topic=topic)


def publish_definitions(
    definitions: Iterable[Definition], *, bootstrap_servers: str, topic: str, timeout: float = 30.0
) -> list[PublishPlan]:
    """Plan against the topic and publish, or raise DefinitionError naming every refused definition."""
    store = DefinitionStore.read(bootstrap_servers=bootstrap_servers, topic=topic, timeout=timeout)
    plans = plan_publish(definitions, store)
    refused = [(f"{p.definition.key}:{p.definition.revision}", problem) for p in plans for problem in p.problems]
    if refused:
        raise DefinitionError(refused)
    records = [plan.definition.to_record() for plan in plans if plan.action == "publish"]
    publish_records(records, bootstrap_servers=bootstrap_servers, topic=topic, timeout=timeout)
    return plans
