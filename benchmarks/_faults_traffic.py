"""The fault suite's clients: the demo's visitors through real loggers, and malformed records among them.

The demo's simulator (``abstream.demo.simulate``) gives the visitors: both experiments, duplicates, faulty
clients, clicks flushed early and late. Added here: some units logged in a second variant (multi-variant
units) and some events of units never exposed. The clients of two apps log through two ``ExposureLogger``
instances, paced at a rate so that faults happen while they log. Everything a logger accepts is kept in
``Logged`` with the event id it returned. The late clicks are logged in a second phase, once the jobs have
caught up with the first (``send(..., phase="late")``), so whether they are late is decided by the data.

``Malformed`` produces bad records straight to the input topics (what a broken client or a foreign producer
would send) and remembers where each landed and what it was.
"""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _faults_reference import Logged
from confluent_kafka import Producer

from abstream.demo.simulate import SPAN, Send, simulate
from producers.assigner import Assigner
from producers.logger import DEFAULT_PRODUCER_CONFIG, ExposureLogger, Source
from producers.records import to_millis
from schemas.serde import AvroSerde

__all__ = ["MALFORMED_KINDS", "Clients", "Malformed", "Traffic", "traffic"]

_SWITCH_RATE = 0.02  # units logged again in the other variant of moon_mars
_LURKER_RATE = 0.01  # events of units never exposed, per visitor
_FAULTY_CLIENT_RATE = 0.02


@dataclass
class Traffic:
    """What the clients send: the on-time records in send order, then the late ones."""

    on_time: list[Send]
    late: list[Send]


def traffic(assigner: Assigner, visitors: int, seed: int) -> Traffic:
    now = datetime.now(UTC)
    sends, _ = simulate(assigner, visitors, seed, _FAULTY_CLIENT_RATE, now)
    rng = random.Random(seed + 1)
    extra: list[Send] = []
    for send in sends:
        f = send.fields
        if send.kind == "exposure" and f["experiment"] == "moon_mars" and rng.random() < _SWITCH_RATE:
            other = next(v.name for v in assigner.experiments["moon_mars"].variants if v.name != f["variant"])
            at = f["client_ts"] + timedelta(seconds=90)
            extra.append(Send("exposure", {**f, "variant": other, "client_ts": at}, at + timedelta(seconds=5)))
    start = now - SPAN
    for i in range(int(visitors * _LURKER_RATE)):
        ts = start + SPAN * 0.7 * rng.random()  # early enough for the watermark to pass it: decided
        fields = {"unit_id": f"lurker-{seed}-{i}", "name": "bounce", "value": None, "ts": ts,
                  "unit_type": "device_id", "properties": {}}  # fmt: skip
        extra.append(Send("event", fields, ts + timedelta(seconds=5)))
    on_time = sorted([s for s in sends if s.send_at <= now] + extra, key=lambda s: s.send_at)
    return Traffic(on_time, [s for s in sends if s.send_at > now])


class Clients:
    """Two apps' loggers; ``send`` logs a list of sends at ``rate`` records/s and records what was accepted."""

    def __init__(self, bootstrap: str, prefix: str, spool: Path) -> None:
        self.logged = Logged()
        self.loggers = [
            ExposureLogger(bootstrap_servers=bootstrap, spool_dir=spool / f"app-{n}", topic_prefix=prefix,
                           source=Source(sdk="abstream-faults", app=f"app-{n}"))
            for n in range(2)
        ]  # fmt: skip

    def send(self, sends: list[Send], rate: float, *, late: bool = False, between: Any = None) -> None:
        """Log ``sends`` paced at ``rate``; ``between(i)`` runs before the i-th (malformed records, faults)."""
        started = time.monotonic()
        for i, send in enumerate(sends):
            if between is not None:
                between(i)
            logger = self.loggers[zlib.crc32(send.fields["unit_id"].encode()) % len(self.loggers)]
            if send.kind == "exposure":
                eid = logger.log_exposure(**send.fields)
                self.logged.exposure(eid, send.fields, to_millis("Exposure", "client_ts", send.fields["client_ts"]))
            else:
                eid = logger.log_event(**send.fields)
                self.logged.event(eid, send.fields, to_millis("Event", "ts", send.fields["ts"]), late=late)
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0.005:
                time.sleep(ahead)

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
