"""Every revision of every experiment definition, read from the compacted topic and followed live.

Each worker needs all definitions (an exposure on any partition may name any experiment), so this is
not a consumer-group member: it assigns itself every partition from the beginning, reads to the high
watermarks before the jobs start, then follows new revisions in a background thread. An exposure
naming a revision not seen yet triggers a catch-up to the current end of the topic before it is
flagged ``unknown_revision``: a definition published just before its first exposure is not a false flag.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from abstream.errors import DecodeError, KafkaSetupError
from schemas.serde import AvroSerde

__all__ = ["DefinitionFollower"]

log = logging.getLogger("abstream.stream_jobs.definitions")


class DefinitionFollower:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._serde = AvroSerde("ExperimentDefinition")
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"abstream-definitions-{uuid.uuid4()}",  # never joins or commits: assign() only
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": log,
        })  # fmt: skip
        self._lock = threading.Lock()
        self._revisions: dict[tuple[str, int], dict[str, Any]] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._last_catch_up = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self, timeout: float = 30.0) -> int:
        """Read the topic to its current end; returns the number of revisions known."""
        metadata = self._consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        if metadata is None or metadata.error is not None:
            raise KafkaSetupError(f"topic {self.topic!r} does not exist: run `abstream topics create`")
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
        self.catch_up(timeout)
        return len(self._revisions)

    def catch_up(self, timeout: float = 10.0) -> None:
        """Consume until every partition's position reaches the high watermark seen now."""
        with self._lock:
            targets = {
                tp.partition: self._consumer.get_watermark_offsets(tp, timeout=timeout)[1]
                for tp in self._consumer.assignment()
            }
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not self._caught_up(targets):
                self._poll(0.2)

    def _caught_up(self, targets: dict[int, int]) -> bool:
        positions = self._consumer.position([TopicPartition(self.topic, p) for p in targets])
        return all(tp.offset >= targets[tp.partition] or targets[tp.partition] == 0 for tp in positions)

    def _poll(self, timeout: float) -> None:
        for msg in self._consumer.consume(500, timeout):
            raw = msg.value()
            if msg.error() is not None or raw is None:
                continue
            try:
                definition = self._serde.decode(raw, topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
            except DecodeError as exc:
                log.error(
                    "skipping an undecodable definition at %s[%s]@%s: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
                continue
            self._revisions[(definition["key"], definition["revision"])] = definition
            current = self._latest.get(definition["key"])
            if current is None or definition["revision"] >= current["revision"]:
                self._latest[definition["key"]] = definition

    def start(self) -> None:
        """Follow new revisions in the background."""
        self._thread = threading.Thread(target=self._follow, name="abstream-definitions", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._poll(0.5)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._consumer.close()

    def get(self, key: str, revision: int) -> dict[str, Any] | None:
        """That revision of that experiment; catches up with the topic (at most once a second) before None."""
        if (found := self._revisions.get((key, revision))) is None and time.monotonic() - self._last_catch_up > 1.0:
            self.catch_up(timeout=5.0)
            self._last_catch_up = time.monotonic()
            found = self._revisions.get((key, revision))
        return found

    def latest(self, key: str) -> dict[str, Any] | None:
        return self._latest.get(key)

    def revisions(self, key: str) -> list[int]:
        return sorted(rev for k, rev in self._revisions if k == key)
