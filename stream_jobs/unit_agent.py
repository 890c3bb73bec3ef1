"""The agent: exposures and events of a unit, in partition order, through ``UnitProcessor``.

Records arrive in batches (``take_events``) to keep Faust's per-message cost off the hot loop; each
record is decoded (undecodable or invalid → dead-letter topic, the job goes on) and applied to its
unit's state. A unit's state is read from the ``units`` table (RocksDB, changelogged) once per batch
and written back once at its end: a table write costs a RocksDB put and a changelog record, the
largest per-record cost after Faust's own. The batch's outputs then go to the producer at once (not
deferred to commit time, so first exposures flow in milliseconds; Faust flushes the producer before
it commits offsets).

After each batch, the agent sweeps a slice of every partition in it that is due
(``stream_jobs.state_sweep``): the entries of units never seen again are pruned against the
partition's watermark and deleted once empty. A table write goes to the partition of the current
event, so a sweep makes one of that partition's records current; a timer sweeps the partitions that
get no records the same way, through the last record applied of each, under the agent's lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import EventT

from abstream.errors import DecodeError
from schemas.serde import AvroSerde
from stream_jobs.dead_letters import dead_letter, rejection
from stream_jobs.first_exposures import FirstExposureWriter
from stream_jobs.processor import Output, UnitProcessor, dump_state, load_state
from stream_jobs.producer import LibrdkafkaProducer
from stream_jobs.settings import JobsSettings
from stream_jobs.state_sweep import PartitionSweeper, store_entries
from stream_jobs.units_table import UnitsTable

__all__ = ["OUTPUT_RECORDS", "install"]

log = logging.getLogger("abstream.stream_jobs")

# The Avro record each output role carries.
OUTPUT_RECORDS = {
    "first_exposures": "FirstExposure",
    "variant_switches": "AssignmentFlag",
    "assignment_flags": "AssignmentFlag",
    "attributed_conversions": "AttributedConversion",
    "unattributed_events": "UnattributedEvent",
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
        self.first_exposures = FirstExposureWriter()
        self.topics = {role: settings.topic(role) for role in OUTPUT_RECORDS}
        self.producer = cast(LibrdkafkaProducer, app.producer)
        self.enabled = set(settings.jobs) | {"dead_letters"}
        if "attributed_conversions" in self.enabled:  # the attribution job's other output
            self.enabled.add("unattributed_events")
        self.table = UnitsTable(
            app,
            name="units",
            beacon=app.tables.beacon,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            help="Per unit: first exposures per experiment, buffered events, applied offsets.",
        )
        app.tables.add(self.table)
        # Reads skip the table's mapping layer (a KeyError per new unit): the store's raw get, in the
        # current record's partition.
        self.store: Any = self.table.data
        self.watermarks: dict[int, dict[str, int]] = {}
        self.anchors: dict[int, EventT] = {}  # the last record applied per partition (idle sweeps write through it)
        self.lock = asyncio.Lock()  # a batch and an idle sweep never interleave: both read and write units
        self.saved_watermarks: dict[bytes, int] = {}  # what the table holds, so a record never reads it
        self.sweeper = PartitionSweeper(
            entries=store_entries(self.table), table=self.table, expire=processor.expire, is_empty=processor.is_empty,
            batch=settings.sweep_batch, interval_s=settings.sweep_interval_s,
        )  # fmt: skip

    async def process(self, batch: Sequence[EventT]) -> None:
        """Apply a batch: each unit's state is read and written once; then the outputs are sent.

        Outputs go straight to librdkafka, not through Faust's per-message send buffer and futures;
        Faust still flushes the producer before it commits offsets, and a failed delivery stops the
        worker (``stream_jobs.producer``).
        """
        work = _Batch()
        for event in batch:
            _make_current(event)  # table reads and watermark writes use the record's partition
            self._handle(event, work)
        if work.decided:  # outputs no replay would re-emit once the states of this batch are stored
            await self._send(work.outputs)
            work.outputs = []
            await self.producer.flush()
        for (partition, unit), raw in work.states.items():
            _make_current(work.anchors[partition])
            if raw is None:
                self.table.pop(unit, None)
            else:
                self.table[unit] = raw
        self.table.persist_offsets()
        self.anchors.update(work.anchors)
        await self._send(work.outputs)

    async def _send(self, outputs: list[tuple[str, bytes | None, bytes]]) -> None:
        for topic, key, value in outputs:
            await self.producer.produce(topic, key, value)

    def _handle(self, event: EventT, work: _Batch) -> None:
        """Apply one record; one that breaks the job goes to the dead-letter topic and the job goes on."""
        msg = event.message
        try:
            self._apply(event, work)
        except Exception as exc:
            log.exception("processing %s[%d]@%d failed", msg.topic, msg.partition, msg.offset)
            self._dead_letter(msg, "processing_error", f"{type(exc).__name__}: {exc}", work)

    def _apply(self, event: EventT, work: _Batch) -> None:
        msg: Any = event.message
        name, serde = self.decoders[msg.topic]
        try:
            record = serde.decode(msg.value, topic=msg.topic, partition=msg.partition, offset=msg.offset)
        except DecodeError as exc:
            return self._dead_letter(msg, exc.kind, str(exc), work)
        if (rejected := rejection(name, record, msg.key)) is not None:
            return self._dead_letter(msg, *rejected, work)
        slot = (msg.partition, msg.key)
        stored = work.states[slot] if slot in work.states else self.store._get(slot[1])
        state = load_state(stored)
        watermark = self._advance(msg.partition, name, record["client_ts" if name == "Exposure" else "ts"])
        if name == "Exposure":  # its Kafka timestamp: what a replay re-emits an AssignmentFlag with
            produced = self.processor.on_exposure(
                state, record, msg.offset, watermark, appended_ms=round(msg.timestamp * 1000)
            )
        else:
            produced = self.processor.on_event(state, record, msg.offset, watermark)
        # Encoded before anything is staged: a record that fails leaves the unit's state as it was.
        outputs = [self._encode(o, msg.value) for o in produced if o.role in self.enabled]
        work.decided |= any(o.final for o in produced)
        empty = self.processor.is_empty(state)
        work.states[slot] = None if empty else dump_state(state)
        work.anchors[msg.partition] = event
        work.outputs += outputs

    def _advance(self, partition: int, kind: str, ts: int) -> int | None:
        """The partition's watermark: the smaller of the two inputs' largest event times so far.

        Exposures and events are separate topics read at their own pace; if one runs ahead, its times
        must not expire buffered events whose exposures the other has not delivered yet. None until
        both inputs have been seen on the partition. Persisted in coarse steps for restarts.
        """
        marks = self.watermarks.setdefault(partition, {})
        key = self._watermark_key(partition, kind)
        if kind not in marks:
            stored = self.table.get(key)
            self.saved_watermarks[key] = int(stored) if stored else 0
            marks[kind] = int(stored) if stored else ts
        if ts > marks[kind]:
            marks[kind] = ts
            if ts - self.saved_watermarks[key] >= _WATERMARK_STEP_MS:
                self.table[key] = str(ts).encode()
                self.saved_watermarks[key] = ts
        return self.watermark(partition)

    def watermark(self, partition: int) -> int | None:
        """The partition's watermark as of the last record applied (see ``_advance``)."""
        marks = self.watermarks.get(partition, {})
        return min(marks.values()) if len(marks) == 2 else None

    async def sweep(self, anchors: Mapping[int, EventT]) -> None:
        """Sweep a slice of each partition that is due, with the given record of it current.

        The events a slice decides are delivered before the slice is stored. A failed slice is logged
        and skipped (the next one starts after it): bounding state must never stop the jobs.
        """
        for partition, event in anchors.items():
            if not self.sweeper.due(partition):
                continue
            try:
                swept = self.sweeper.plan(partition, self.watermark(partition))
                outputs = [self._encode(o, b"") for o in swept.outputs if o.role in self.enabled]
                if any(o.final for o in swept.outputs):
                    await self._send(outputs)
                    await self.producer.flush()
                _make_current(event)
                self.sweeper.store(swept)
            except Exception:
                log.exception("state sweep of partition %d failed; the jobs go on", partition)

    async def sweep_idle(self, active: set[int]) -> None:
        """Sweep the partitions that are due but get no records, through the last record seen of each.

        Without it, the buffered events of a partition that goes quiet would wait for its next record to
        be decided. Only partitions this worker still owns (``active``); the others' records are dropped.
        """
        for partition in set(self.anchors) - active:
            del self.anchors[partition]
        await self.sweep(self.anchors)

    @staticmethod
    def _watermark_key(partition: int, kind: str) -> bytes:
        return f"\x00watermark:{kind}:{partition}".encode()

    def _encode(self, output: Output, raw: bytes) -> tuple[str, bytes | None, bytes]:
        if output.role == "first_exposures":  # of the exposure being applied: its own bytes, extended
            value = self.first_exposures.encode(output.record, raw)
        else:
            value = self.encoders[output.role].encode(output.record)
        return self.topics[output.role], output.key.encode(), value

    def _dead_letter(self, msg: Any, kind: str, message: str, work: _Batch) -> None:
        log.warning("dead letter from %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, message)
        record = dead_letter(
            topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key, raw=msg.value or b"",
            kind=kind, message=message, now_ms=time.time_ns() // 1_000_000,
        )  # fmt: skip
        work.outputs.append((self.topics["dead_letters"], msg.key, self.encoders["dead_letters"].encode(record)))


def _make_current(event: EventT) -> None:
    """Make ``event`` this task's current record: Faust tables read and write in its partition.

    Only the task's context variable (what ``faust.current_event()`` reads), never the stream's
    ``current_event`` attribute: under ``take_events`` the stream runs in another task, which sets that
    attribute, awaits the agent's batch, then reads it back to record the event it is adding. Set by
    the agent meanwhile, the buffer would record an event of the last batch instead (processed twice,
    the new one never), whenever the agent awaits (a flush, a full producer queue).
    """
    _current_event.set(weakref.ref(event))


class _Batch:
    """A batch's work in progress: the units' new states (None: delete) and the encoded outputs."""

    __slots__ = ("anchors", "decided", "outputs", "states")

    def __init__(self) -> None:
        self.decided = False  # a final output (``Output.final``): delivered before the states are stored
        self.states: dict[tuple[int, bytes], bytes | None] = {}
        self.anchors: dict[int, EventT] = {}  # a record of each partition, current while its writes go out
        self.outputs: list[tuple[str, bytes | None, bytes]] = []


def install(app: faust.App, settings: JobsSettings, processor: UnitProcessor, partitions: int) -> Callable[..., Any]:
    """Add the ``units`` agent and table to ``app``; returns the agent."""
    job = _UnitJob(app, settings, processor, partitions)
    source = app.topic(
        settings.topic("exposures"), settings.topic("events"), key_serializer="raw", value_serializer="raw"
    )

    @app.agent(source, name="units")
    async def units(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):  # type: ignore[attr-defined]
            async with job.lock:
                await job.process(batch)
                await job.sweep({e.message.partition: e for e in batch})

    @app.timer(interval=settings.sweep_interval_s)
    async def sweep_idle_partitions() -> None:
        if app.rebalancing:
            return
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == job.exposures_topic}
        async with job.lock:
            await job.sweep_idle(active)

    @app.timer(interval=30.0)
    async def report_health() -> None:
        log.info("abstream jobs health: %s", processor.health)

    return units
