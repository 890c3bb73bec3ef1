"""Undecodable records go to ``<prefix>dead-letters`` as ``DeadLetter`` records, byte for byte.

Delivery is confirmed before the batch holding the record is committed, so a bad record is never
both skipped and lost. A replay may send a dead letter twice; its key ``topic:partition:offset``
lets readers collapse repeats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from abstream.errors import SinkError
from schemas.serde import AvroSerde
from sinks.batching import Entry

__all__ = ["DeadLetterWriter"]

_JOB = "abstream-sink"


class DeadLetterWriter:
    """Produces dead letters and waits until the broker has them all."""

    def __init__(self, producer: Any, topic: str, *, timeout: float = 30.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout
        self._serde = AvroSerde("DeadLetter")
        self._failed: list[str] = []

    def send(self, topic: str, partition: int, entries: Sequence[Entry]) -> None:
        """Deliver one dead letter per entry; SinkError if any is not acknowledged in time."""
        if not entries:
            return
        now = int(time.time() * 1000)
        self._failed = []
        for entry in entries:
            self._producer.produce(
                self._topic,
                key=f"{topic}:{partition}:{entry.offset}".encode(),
                value=self._serde.encode(self._record(topic, partition, entry, now)),
                on_delivery=self._on_delivery,
            )
        left = self._producer.flush(self._timeout)
        if left or self._failed:
            detail = "; ".join(self._failed[:3]) or f"{left} not acknowledged within {self._timeout:g} s"
            raise SinkError(f"dead letters to {self._topic} were not delivered: {detail}")

    def close(self) -> None:
        self._producer.flush(self._timeout)

    def _record(self, topic: str, partition: int, entry: Entry, now: int) -> dict[str, Any]:
        assert entry.error is not None
        return {
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": entry.offset,
            "key": entry.key,
            "raw": entry.value or b"",
            "error_kind": entry.error.kind,
            "message": str(entry.error),
            "job": _JOB,
            "first_seen_ts": now,
            "attempts": 1,
        }

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))
