"""The fault suite's clients: the demo's visitors through real loggers, and malformed records among them.

The demo's simulator (``abstream.demo.simulate``) gives the visitors: both experiments, duplicates, faulty
clients, clicks flushed early and late. Added here: some units logged in a second variant (multi-variant
units) and some events of units never exposed.

Time is real: the simulator's two hours are played in ``span_s`` seconds of wall time, and every record
carries the wall-clock time at which it happens (the visitors come faster and click sooner than the demo's,
but event time runs at the speed of the clock). A fault that delays records by a minute delays them by a
minute of event time, as in production: well inside the jobs' allowed lateness and the attribution windows.
The simulator's late clicks come from clients that were offline: their visitors were exposed ``BACKDATE_MS``
before the run (the exposures, flushed when the client comes back, arrive during the run with their old
time); their clicks are logged in a second phase, once the jobs have caught up with the first, so they are
late by far more than the allowed lateness; so are the bounces of units never exposed, logged with them.

The clients of two apps log through two ``ExposureLogger`` instances, each record at its time. Everything a
logger accepts is kept in ``Logged`` with the event id it returned.

``Malformed`` produces bad records straight to the input topics (what a broken client or a foreign producer
would send) and remembers where each landed and what it was.
"""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _faults_reference import Logged
from confluent_kafka import Producer

from abstream.demo.simulate import SPAN, simulate
from producers.assigner import Assigner
from producers.logger import DEFAULT_PRODUCER_CONFIG, ExposureLogger, Source
from schemas.serde import AvroSerde

__all__ = ["BACKDATE_MS", "MALFORMED_KINDS", "Clients", "Malformed", "Timed", "Traffic", "traffic"]

BACKDATE_MS = 30 * 60_000  # how long before the run the offline clients' visitors were exposed
_SWITCH_RATE = 0.02  # units logged again in the other variant of moon_mars
_LURKER_RATE = 0.01  # events of units never exposed, per visitor
_FAULTY_CLIENT_RATE = 0.02
_LATE_RATE = 500.0  # records/s of the second phase (old records: their pace does not matter)
_ORIGIN = datetime(2025, 6, 1, tzinfo=UTC)  # the simulator's clock; only differences of its times are used


@dataclass(frozen=True)
class Timed:
    """One thing a client logs: ``fields`` without the time, which is ``ts`` ms after the run's start (or
    before it: negative), logged ``send`` ms after the run's start (the first phase; the second is paced)."""

    kind: str  # "exposure" or "event"
    fields: dict[str, Any]
    ts: int
    send: int


@dataclass
class Traffic:
    """What the clients send: the on-time records in send order, then the late ones."""

    on_time: list[Timed]
    late: list[Timed]
    span_s: float


def traffic(assigner: Assigner, visitors: int, seed: int, span_s: float) -> Traffic:
    """The demo's visitors played in ``span_s`` seconds of wall time (see the module doc)."""
    sends, _ = simulate(assigner, visitors, seed, _FAULTY_CLIENT_RATE, _ORIGIN)
    start, scale = _ORIGIN - SPAN, span_s * 1000 / SPAN.total_seconds()

    def at(when: datetime) -> int:
        return round((when - start).total_seconds() * scale)

    offline = {s.fields["unit_id"] for s in sends if s.send_at > _ORIGIN}
    rng = random.Random(seed + 1)
    on_time: list[Timed] = []
    late: list[Timed] = []
    for send in sends:
        f = dict(send.fields)
        when = f.pop("client_ts" if send.kind == "exposure" else "ts")
        back = BACKDATE_MS if f["unit_id"] in offline else 0
        if send.kind == "event" and back:
            late.append(Timed("event", f, at(when) - back, 0))
            continue
        timed = Timed(send.kind, f, at(when) - back, at(send.send_at))
        on_time.append(timed)
        if send.kind == "exposure" and f["experiment"] == "moon_mars" and rng.random() < _SWITCH_RATE:
            other = next(v.name for v in assigner.experiments["moon_mars"].variants if v.name != f["variant"])
            nudge = round(90 * scale) + 1  # the demo's 90 s later
            on_time.append(Timed("exposure", {**f, "variant": other}, timed.ts + nudge, timed.send + nudge))
    for i in range(int(visitors * _LURKER_RATE)):
        fields: dict[str, Any] = {"unit_id": f"lurker-{seed}-{i}", "name": "bounce", "value": None,
                                  "unit_type": "device_id", "properties": {}}  # fmt: skip
        late.append(Timed("event", fields, round(span_s * 1000 * rng.random()) - BACKDATE_MS, 0))
    on_time.sort(key=lambda t: t.send)
    return Traffic(on_time, late, span_s)


class Clients:
    """Two apps' loggers; ``send`` logs records at their times and keeps what was accepted."""

    def __init__(self, bootstrap: str, prefix: str, spool: Path) -> None:
        self.logged = Logged()
        self.start_ms: int | None = None  # wall-clock time of the run's start (the first ``send``)
        self.loggers = [
            ExposureLogger(bootstrap_servers=bootstrap, spool_dir=spool / f"app-{n}", topic_prefix=prefix,
                           source=Source(sdk="abstream-faults", app=f"app-{n}"))
            for n in range(2)
        ]  # fmt: skip

    def send(
        self, records: list[Timed], *, late: bool = False, between: Callable[[int, int], None] | None = None
    ) -> None:
        """Log ``records``: the first phase each at its time, the late phase paced; ``between(i, ts)`` runs
        before the i-th, ``ts`` its wall-clock time in ms (malformed records among the valid)."""
        started = time.monotonic()
        if self.start_ms is None:
            self.start_ms = time.time_ns() // 1_000_000
        for i, record in enumerate(records):
            due = (i / _LATE_RATE) if late else record.send / 1000
            ahead = due - (time.monotonic() - started)
            if ahead > 0.002:
                time.sleep(ahead)
            ts = self.start_ms + record.ts
            if between is not None:
                between(i, ts)
            logger = self.loggers[zlib.crc32(record.fields["unit_id"].encode()) % len(self.loggers)]
            if record.kind == "exposure":
                eid = logger.log_exposure(**record.fields, client_ts=ts)
                self.logged.exposure(eid, record.fields, ts)
            else:
                eid = logger.log_event(**record.fields, ts=ts)
                self.logged.event(eid, record.fields, ts, late=late)

    def flush(self, timeout: float) -> bool:
        return all(logger.flush(timeout) for logger in self.loggers)

    def spooled(self) -> int:
        return sum(logger.stats.spooled for logger in self.loggers)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close(5.0)


MALFORMED_KINDS = (
    "random_bytes", "truncated", "unknown_fingerprint", "wrong_record_type", "out_of_contract", "900kb_value",
    "null_key", "wrong_key",
)  # fmt: skip


@dataclass
class Malformed:
    """Bad records produced to the input topics; ``placed`` maps (topic, partition, offset) to the kind."""

    bootstrap: str
    prefix: str
    seed: int
    placed: dict[tuple[str, int, int], str] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed + 2)
        self.producer = Producer({**DEFAULT_PRODUCER_CONFIG, "bootstrap.servers": self.bootstrap})
        self.exposure, self.event = AvroSerde("Exposure"), AvroSerde("Event")
        self.failed: list[str] = []

    def send_one(self, n: int, ts: int) -> None:
        """The ``n``-th bad record; those that decode carry time ``ts`` (the valid records' time around them)."""
        kind = MALFORMED_KINDS[n % len(MALFORMED_KINDS)]
        role, key, value = self._make(kind, n, ts)
        topic = self.prefix + role

        def placed(err: Any, msg: Any) -> None:
            if err is not None:
                self.failed.append(str(err))
            else:
                self.placed[(msg.topic(), msg.partition(), msg.offset())] = kind

        self.producer.produce(topic, value, key, on_delivery=placed)
        self.producer.poll(0)
        self.sent[kind] += 1

    def flush(self, timeout: float) -> bool:
        return self.producer.flush(timeout) == 0 and not self.failed

    def _make(self, kind: str, n: int, ts: int) -> tuple[str, bytes | None, bytes]:
        rng, unit = self.rng, f"bad-{self.seed}-{n}"
        good = self.exposure.encode(_exposure(unit, client_ts=ts))
        if kind == "random_bytes":
            return rng.choice(("exposures", "events")), unit.encode(), rng.randbytes(rng.randrange(1, 200))
        if kind == "truncated":
            return "exposures", unit.encode(), good[: rng.randrange(1, len(good) - 1)]
        if kind == "unknown_fingerprint":
            return "events", unit.encode(), b"\xc3\x01" + rng.randbytes(8) + good[10:]
        if kind == "wrong_record_type":
            wrong = self.event.encode({**_event(unit), "ts": ts})
            return ("exposures", unit.encode(), wrong) if n % 2 else ("events", unit.encode(), good)
        if kind == "out_of_contract":
            bad = self.exposure.encode(_exposure(unit, client_ts=ts, **_OUT_OF_CONTRACT[n % 6]))
            return "exposures", unit.encode(), bad
        if kind == "900kb_value":
            return "exposures", unit.encode(), good + rng.randbytes(900_000)
        if kind == "null_key":
            return "exposures", None, good
        return "exposures", f"someone-else-{n}".encode(), good  # wrong_key


# Values the schema can carry but the contract (schemas.models) forbids.
_OUT_OF_CONTRACT: list[dict[str, Any]] = [
    {"sampling_rate": 5.0}, {"sampling_rate": 0.0}, {"sampling_rate": -1.0}, {"revision": -1},
    {"bucket_position": 1.5}, {"event_id": "not-a-uuid"},
]  # fmt: skip


def _exposure(unit: str, **changes: Any) -> dict[str, Any]:
    record = {
        "event_id": str(uuid.uuid4()), "experiment": "moon_mars", "revision": 1, "variant": "Moon",
        "unit_type": "device_id", "unit_id": unit, "scheme": "sha256-weights", "hash_seed": None,
        "hash_version": None, "bucket_position": None, "bucket_index": None, "params": {}, "hash_used": True,
        "sticky_bucket_used": False, "forced": False, "source": {"sdk": "bad", "sdk_version": None, "app": None,
        "host": None}, "client_ts": 0, "received_ts": None, "context": {},
        "sampling_rate": 1.0,
    }  # fmt: skip
    return {**record, **changes}


def _event(unit: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "unit_type": "device_id", "unit_id": unit, "name": "bounce", "value": None,
        "ts": 0, "received_ts": None, "properties": {},
        "source": {"sdk": "bad", "sdk_version": None, "app": None, "host": None},
    }  # fmt: skip
