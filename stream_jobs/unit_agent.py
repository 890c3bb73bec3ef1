"""The agent: exposures and events of a unit, in partition order, through ``UnitProcessor``.

Records arrive in batches (``take_events``) to keep Faust's per-message cost off the hot loop; each
record is decoded (undecodable or invalid → dead-letter topic, the job goes on), applied to the unit's
state in the ``units`` table (RocksDB, changelogged), and its outputs are handed to the producer at
once (``send_soon``: not deferred to commit time, so first exposures flow in milliseconds; Faust still
flushes the producer before committing offsets).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from abstream.errors import DecodeError
from schemas.serde import AvroSerde
from stream_jobs.dead_letters import dead_letter, invalid_reason
from stream_jobs.processor import Output, UnitProcessor
from stream_jobs.settings import JobsSettings

__all__ = ["OUTPUT_RECORDS", "install"]

log = logging.getLogger("abstream.stream_jobs")

# The Avro record each output role carries.
OUTPUT_RECORDS = {
    "first_exposures": "FirstExposure",
    "variant_switches": "AssignmentFlag",
    "assignment_flags": "AssignmentFlag",
    "attributed_conversions": "AttributedConversion",
    "dead_letters": "DeadLetter",
}
_WATERMARK_STEP_MS = 1_000


class _UnitJob:
    """Per-record work of the agent, with the topics, serdes and table it needs."""

    def __init__(self, app: faust.App, settings: JobsSettings, processor: UnitProcessor, partitions: int) -> None:
        self.settings = settings
        self.processor = processor
        self.exposures_topic = settings.topic("exposures")
        self.decoders = {
            self.exposures_topic: ("Exposure", AvroSerde("Exposure")),
            settings.topic("events"): ("Event", AvroSerde("Event")),
        }
        self.encoders = {role: AvroSerde(name) for role, name in OUTPUT_RECORDS.items()}
        self.outputs = {
            role: app.topic(settings.topic(role), key_serializer="raw", value_serializer="raw")
            for role in OUTPUT_RECORDS
        }
        self.enabled = set(settings.jobs) | {"dead_letters"}
        self.table = app.Table(
            "units",
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            help="Per unit: first exposures per experiment, buffered events, applied offsets.",
        )
        self.watermarks: dict[int, dict[str, int]] = {}

    def handle(self, event: faust.types.EventT) -> None:
        """Apply one record; one that breaks the job goes to the dead-letter topic and the job goes on."""
        try:
            self._apply(event.message)
        except Exception as exc:
            log.exception(
                "processing %s[%d]@%d failed", event.message.topic, event.message.partition, event.message.offset
            )
            self._dead_letter(event.message, "processing_error", f"{type(exc).__name__}: {exc}")

    def _apply(self, msg: Any) -> None:
        name, serde = self.decoders[msg.topic]
        try:
            record = serde.decode(msg.value, topic=msg.topic, partition=msg.partition, offset=msg.offset)
        except DecodeError as exc:
            return self._dead_letter(msg, exc.kind, str(exc))
        if (reason := invalid_reason(name, record, msg.key)) is not None:
            return self._dead_letter(msg, "invalid_record", reason)
        key = msg.key or record["unit_id"].encode()
        stored = self.table.get(key)
        state = json.loads(stored) if stored else {}
        watermark = self._advance(msg.partition, name, record["client_ts" if name == "Exposure" else "ts"])
        apply = self.processor.on_exposure if name == "Exposure" else self.processor.on_event
        outputs = apply(state, record, msg.offset, watermark)
        if self.processor.is_empty(state):
            self.table.pop(key, None)
        else:
            self.table[key] = json.dumps(state, separators=(",", ":")).encode()
        for output in outputs:
            self._send(output)

    def _advance(self, partition: int, kind: str, ts: int) -> int | None:
        """The partition's watermark: the smaller of the two inputs' largest event times so far.

        Exposures and events are separate topics read at their own pace; if one runs ahead, its times
        must not expire buffered events whose exposures the other has not delivered yet. None until
        both inputs have been seen on the partition. Persisted in coarse steps for restarts.
        """
        marks = self.watermarks.setdefault(partition, {})
        if kind not in marks:
            stored = self.table.get(self._watermark_key(partition, kind))
            marks[kind] = int(stored) if stored else ts
        if ts > marks[kind]:
            if ts - int(self.table.get(self._watermark_key(partition, kind)) or 0) >= _WATERMARK_STEP_MS:
                self.table[self._watermark_key(partition, kind)] = str(ts).encode()
            marks[kind] = ts
        return min(marks.values()) if len(marks) == 2 else None

    @staticmethod
    def _watermark_key(partition: int, kind: str) -> bytes:
        return f"\x00watermark:{kind}:{partition}".encode()

    def _send(self, output: Output) -> None:
        if output.role in self.enabled:
            value = self.encoders[output.role].encode(output.record)
            self.outputs[output.role].send_soon(key=output.key.encode(), value=value)

    def _dead_letter(self, msg: Any, kind: str, message: str) -> None:
        log.warning("dead letter from %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, message)
        record = dead_letter(
            topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key, raw=msg.value or b"",
            kind=kind, message=message, now_ms=time.time_ns() // 1_000_000,
        )  # fmt: skip
        self.outputs["dead_letters"].send_soon(key=msg.key, value=self.encoders["dead_letters"].encode(record))


def install(app: faust.App, settings: JobsSettings, processor: UnitProcessor, partitions: int) -> Callable[..., Any]:
    """Add the ``units`` agent and table to ``app``; returns the agent."""
    job = _UnitJob(app, settings, processor, partitions)
    source = app.topic(
        settings.topic("exposures"), settings.topic("events"), key_serializer="raw", value_serializer="raw"
    )

    @app.agent(source, name="units")
    async def units(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):  # type: ignore[attr-defined]
            for event in batch:
                # Table writes pick their changelog partition from the current event: inside a
                # batch, that must be the record being applied, not the batch's last one.
                stream._set_current_event(event)  # type: ignore[attr-defined]
                job.handle(event)

    @app.timer(interval=30.0)
    async def report_health() -> None:
        log.info("abstream jobs health: %s", processor.health)

    return units
