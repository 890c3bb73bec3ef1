"""Random experiment traffic for the stream-job tests, and the brute-force answer it should produce.

The generator writes what clients really do: duplicates, retries with the same event id, exposures out
of order, conversions flushed before the exposure that precedes them, units switching variants, wrong
assignments, unknown experiments/revisions/variants, malformed bytes. The reference computes every
output from the whole input at once, in plain Python, with no state machine: it is what the streaming
jobs must converge to.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

from schemas.hashing import assign
from schemas.serde import AvroSerde

T0 = 1_800_000_000_000
MINUTE = 60_000
SOURCE = {"sdk": "test", "sdk_version": "1", "app": None, "host": None}

EXPERIMENTS = {
    "moon_mars": {"weights": {"Moon": 50, "Mars": 50}, "window": 60 * MINUTE},
    "white_gold_btn": {"weights": {"White": 50, "Gold": 50}, "window": 30 * MINUTE},
}


def definition_record(key: str, revision: int = 1) -> dict[str, Any]:
    spec = EXPERIMENTS[key]
    return {
        "key": key, "revision": revision, "title": key, "unit_type": "user_id", "scheme": "sha256-weights",
        "scheme_params": json.dumps({"salt": key, "weights": spec["weights"]}),
        "variants": [{"name": n, "weight": w} for n, w in spec["weights"].items()],
        "fallback_variant": next(iter(spec["weights"])), "state": "active", "rollout_variant": None,
        "start_ts": None, "end_ts": None, "attribution_window_ms": spec["window"], "dedupe": "first_ever",
        "dedupe_window_ms": None, "owner": None, "published_ts": T0, "definition_hash": "0" * 64,
    }  # fmt: skip


def expected_variant(key: str, unit: str) -> str:
    spec = EXPERIMENTS[key]
    return assign("sha256-weights", {"salt": key, "weights": spec["weights"]}, unit).variant  # type: ignore[return-value]


@dataclass
class Traffic:
    """What to produce (per topic, in order) and the inputs the reference needs."""

    exposures: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[tuple[str, bytes]] = field(default_factory=list)  # (role, raw bytes)
    late_events: list[dict[str, Any]] = field(default_factory=list)  # produced after a watermark jump
    clock_jump: list[dict[str, Any]] = field(default_factory=list)  # exposures 2 hours later, every partition
    clock_jump_events: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # both topics, in send order


def exposure_record(
    key: str, unit: str, variant: str, ts: int, *, revision: int = 1, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()), "experiment": key, "revision": revision, "variant": variant,
        "unit_type": "user_id", "unit_id": unit, "scheme": "sha256-weights", "hash_seed": key, "hash_version": None,
        "bucket_position": None, "bucket_index": None, "params": {}, "hash_used": True, "sticky_bucket_used": False,
        "forced": False, "source": SOURCE, "client_ts": ts, "received_ts": None, "context": {}, "sampling_rate": 1.0,
    }  # fmt: skip


def event_record(unit: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "unit_type": "user_id", "unit_id": unit, "name": "click", "value": 1.0,
        "ts": ts, "properties": {}, "source": SOURCE,
    }  # fmt: skip


def _unit_exposures(rng: random.Random, key: str, unit: str) -> list[dict[str, Any]]:
    right = expected_variant(key, unit)
    other = next(v for v in EXPERIMENTS[key]["weights"] if v != right)
    first_ts = T0 + rng.randrange(10 * MINUTE)
    variant = right if rng.random() > 0.05 else other  # a faulty client
    out = [exposure_record(key, unit, variant, first_ts)]
    for _ in range(rng.choice((0, 0, 1, 2, 3))):  # duplicates: new event ids, later times
        switched = other if rng.random() < 0.05 else variant  # a unit seen in two variants
        out.append(exposure_record(key, unit, switched, first_ts + rng.randrange(1, 5 * MINUTE)))
    if rng.random() < 0.2:  # a retry: the very same record again
        out.append(dict(rng.choice(out)))
    if rng.random() < 0.3:  # flushed out of order: a later exposure is produced first
        rng.shuffle(out)
    return out


def _unit_events(rng: random.Random, unit: str, first: dict[str, int]) -> list[dict[str, Any]]:
    if not first:
        return [event_record(unit, T0 + rng.randrange(10 * MINUTE)) for _ in range(rng.choice((0, 1)))]
    anchor = min(first.values())
    return [
        event_record(unit, anchor + rng.randrange(-2 * MINUTE, 70 * MINUTE)) for _ in range(rng.choice((0, 1, 1, 2, 3)))
    ]


def generate(seed: int, units: int) -> Traffic:
    rng, traffic = random.Random(seed), Traffic()
    for i in range(units):
        unit, first = f"u{seed}-{i}", {}
        for key in EXPERIMENTS:
            if rng.random() < 0.85:
                exposures = _unit_exposures(rng, key, unit)
                first[key] = min(e["client_ts"] for e in exposures)
                traffic.exposures += exposures
        traffic.events += _unit_events(rng, unit, first)
    _add_bad_assignments(rng, traffic, seed)
    _add_malformed(rng, traffic)
    _add_late(rng, traffic, seed)
    _schedule(rng, traffic)
    return traffic


def _schedule(rng: random.Random, traffic: Traffic) -> None:
    """Send order: each record's own time plus a client delay of up to 5 minutes (so, out of order)."""
    tagged = [("exposures", e) for e in traffic.exposures] + [("events", e) for e in traffic.events]
    delays = [rng.randrange(5 * MINUTE) for _ in tagged]
    order = sorted(range(len(tagged)), key=lambda i: _time(tagged[i][1]) + delays[i])
    traffic.sent = [tagged[i] for i in order]


def _time(record: dict[str, Any]) -> int:
    return record["client_ts"] if "client_ts" in record else record["ts"]


def _add_bad_assignments(rng: random.Random, traffic: Traffic, seed: int) -> None:
    for i in range(5):
        traffic.exposures.append(exposure_record("nope", f"x{seed}-{i}", "A", T0 + i))  # unknown experiment
        traffic.exposures.append(exposure_record("moon_mars", f"y{seed}-{i}", "Moon", T0 + i, revision=99))
        traffic.exposures.append(exposure_record("moon_mars", f"z{seed}-{i}", "Venus", T0 + i))  # unknown variant


def _add_malformed(rng: random.Random, traffic: Traffic) -> None:
    exposure = AvroSerde("Exposure").encode(exposure_record("moon_mars", "m", "Moon", T0))
    event = AvroSerde("Event").encode(event_record("m", T0))
    traffic.malformed += [
        ("exposures", rng.randbytes(40)),
        ("exposures", exposure[:25]),  # truncated
        ("exposures", event),  # an Event on the exposures topic
        ("events", b"\xc3\x01" + rng.randbytes(8) + b"body"),  # unknown fingerprint
        ("events", event[:-3]),
    ]


def units_on_every_partition(prefix: str, partitions: int = 6) -> list[str]:
    """Unit ids ``<prefix><n>``, one landing on each partition as the loggers place keys (murmur2)."""
    found: dict[int, str] = {}
    for n in itertools.count():
        unit = f"{prefix}{n}"
        found.setdefault((murmur2(unit.encode()) & 0x7FFFFFFF) % partitions, unit)
        if len(found) == partitions:
            break
    return list(found.values())


def _add_late(rng: random.Random, traffic: Traffic, seed: int, partitions: int = 6) -> None:
    """After everything else: exposures and events 2 hours later on every partition, then old conversions."""
    jump_ts = T0 + 120 * MINUTE
    for unit in units_on_every_partition(f"j{seed}-", partitions):
        traffic.clock_jump.append(exposure_record("moon_mars", unit, expected_variant("moon_mars", unit), jump_ts))
        traffic.clock_jump_events.append(event_record(unit, jump_ts + 1000))
    exposed = [e for e in traffic.exposures if e["experiment"] == "moon_mars" and e["revision"] == 1]
    for e in rng.sample(exposed, 5):
        traffic.late_events.append(event_record(e["unit_id"], e["client_ts"] + 1000))
    traffic.late_events.append(event_record(f"never-{seed}", T0))


# -- the reference ---------------------------------------------------------------------------------
def first_exposures(exposures: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for e in exposures:
        key = (e["experiment"], e["unit_id"])
        if key not in out or (e["client_ts"], e["event_id"]) < (out[key]["client_ts"], out[key]["event_id"]):
            out[key] = e
    return out


def first_exposure_emissions(exposures: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """How many FirstExposure records each key gets: one, plus one per earlier exposure arriving later."""
    best: dict[tuple[str, str], tuple[int, str]] = {}
    count: dict[tuple[str, str], int] = {}
    for e in exposures:  # per key, the topic keeps production order
        key, rank = (e["experiment"], e["unit_id"]), (e["client_ts"], e["event_id"])
        if key not in best or rank < best[key]:
            best[key], count[key] = rank, count.get(key, 0) + 1
    return count


def variant_sets(exposures: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """Units seen in 2+ variants: their variants in first-seen order."""
    seen: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
    for e in exposures:
        variants = seen.setdefault((e["experiment"], e["unit_id"]), {})
        rank = (e["client_ts"], e["event_id"])
        variants[e["variant"]] = min(variants.get(e["variant"], rank), rank)
    return {k: sorted(v, key=v.__getitem__) for k, v in seen.items() if len(v) > 1}


def assignment_flags(exposures: list[dict[str, Any]]) -> set[tuple[str, str]]:
    flags = set()
    for e in exposures:
        key = e["experiment"]
        if key not in EXPERIMENTS:
            flags.add((e["event_id"], "unknown_experiment"))
        elif e["revision"] != 1:
            flags.add((e["event_id"], "unknown_revision"))
        elif e["variant"] not in EXPERIMENTS[key]["weights"]:
            flags.add((e["event_id"], "unknown_variant"))
        elif e["variant"] != expected_variant(key, e["unit_id"]):
            flags.add((e["event_id"], "variant_mismatch"))
    return flags


def attributions(exposures: list[dict[str, Any]], events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(event id, experiment, exposure event id) for every event inside a first exposure's window."""
    firsts = first_exposures(exposures)
    out = set()
    for ev in events:
        for key, spec in EXPERIMENTS.items():
            f = firsts.get((key, ev["unit_id"]))
            if f is not None and f["client_ts"] <= ev["ts"] <= f["client_ts"] + spec["window"]:
                out.add((ev["event_id"], key, f["event_id"]))
    return out


def unattributed(
    exposures: list[dict[str, Any]], events: list[dict[str, Any]], late: list[dict[str, Any]]
) -> dict[str, str]:
    """Event id -> reason, for every event attributed to no experiment (``late``: those sent past the lateness,
    ``late`` as the reason only for a unit exposed to something, else ``never_exposed``)."""
    attributed = {event_id for event_id, _, _ in attributions(exposures, events + late)}
    exposed = {e["unit_id"] for e in exposures}
    out = {e["event_id"]: "outside_window" if e["unit_id"] in exposed else "never_exposed" for e in events}
    out |= {e["event_id"]: "late" if e["unit_id"] in exposed else "never_exposed" for e in late}
    return {event_id: reason for event_id, reason in out.items() if event_id not in attributed}
