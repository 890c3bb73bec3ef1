"""A deterministic experiment history, as the stream jobs would publish it, with its expected report.

The records include what makes counting hard: first exposures re-emitted with a higher duplicates
count, conversions delivered twice (at-least-once jobs), a unit converting twice, late conversions,
exposures flagged for two reasons, flags delivered twice, variant switches re-emitted as a unit shows
more variants, two definition revisions. ``expected(policy)`` counts the truth independently of
ClickHouse, straight from the Python records.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.metrics import ExperimentMetrics
from schemas.models import AssignmentFlag, AttributedConversion, ExperimentDefinition, FirstExposure, UnattributedEvent

__all__ = ["EXPERIMENTS", "Scenario", "build_scenario"]

BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "moon_mars": {"variants": [("Moon", 1), ("Mars", 1)], "fallback": "Moon", "rates": {"Moon": 0.1, "Mars": 0.2}},
    "gold_white": {
        "variants": [("White", 2), ("Gold", 1), ("Silver", 1)],
        "fallback": "White",
        "rates": {"White": 0.15, "Gold": 0.15, "Silver": 0.25},
    },
}

Keyed = tuple[bytes, dict[str, Any]]


@dataclass
class Scenario:
    """Records per topic role (key, Avro dict), and what was generated, for computing the truth."""

    records: dict[str, list[Keyed]] = field(default_factory=lambda: defaultdict(list))
    units: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (exp, unit) -> first exposure
    conversions: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> record
    flags: list[dict[str, Any]] = field(default_factory=list)
    switched: set[tuple[str, str]] = field(default_factory=set)
    unattributed: dict[str, str] = field(default_factory=dict)  # event_id -> reason of its latest record

    def delivered(self, role: str) -> int:
        return len(self.records[role])

    def expected_unattributed(self) -> dict[str, int]:
        """Events attributed to no experiment, by reason: each event once, with its latest reason."""
        counts = dict.fromkeys(("never_exposed", "outside_window", "late"), 0)
        for reason in self.unattributed.values():
            counts[reason] += 1
        return counts

    def expected(self, policy: str) -> dict[str, dict[str, Any]]:
        """Per experiment: the counts the report must show under ``policy``."""
        out: dict[str, dict[str, Any]] = {}
        for key, spec in EXPERIMENTS.items():
            out[key] = {"variants": {}, **self._health(key)}
            for name, weight in spec["variants"]:
                units = {u for (e, u), r in self.units.items() if e == key and r["variant"] == name}
                if policy == "exclude":
                    units -= {u for e, u in self.switched if e == key}
                events = [c for c in self.conversions.values() if c["experiment"] == key and c["unit_id"] in units]
                out[key]["variants"][name] = {
                    "units": len(units),
                    "converting_units": len({c["unit_id"] for c in events}),
                    "conversions": len(events),
                    "late_conversions": sum(c["late"] for c in events),
                    "weight": weight,
                }
        return out

    def _health(self, key: str) -> dict[str, Any]:
        exposures = sum(1 + r["duplicates"] for (e, _), r in self.units.items() if e == key)
        mismatched = {f["event_id"] for f in self.flags if f["experiment"] == key}
        return {
            "exposures": exposures,
            "mismatches": len(mismatched),
            "multi_variant_units": sum(1 for e, _ in self.switched if e == key),
        }


def build_scenario(seed: int = 7, units: int = 600, metrics: Mapping[str, ExperimentMetrics] | None = None) -> Scenario:
    """The history of both experiments; the same seed gives the same records.

    ``metrics`` gives experiments a metrics block in both definition revisions (their conversions are
    ``click`` events with a value).
    """
    rnd = random.Random(seed)
    scenario = Scenario()
    for key in EXPERIMENTS:
        _definitions(scenario, key, (metrics or {}).get(key))
        for i in range(units):
            _unit(scenario, rnd, key, f"{key[:1]}-u{i}", BASE_TS + i * 997)
    _unattributed(scenario, rnd, 60)
    return scenario


def _unattributed(scenario: Scenario, rnd: random.Random, events: int) -> None:
    """Events of units never exposed and the like; some re-emitted by a replay, a few with another reason."""
    for i in range(events):
        unit, reason = f"n-u{i % 40}", rnd.choice(("never_exposed", "never_exposed", "outside_window", "late"))
        record = UnattributedEvent(
            event_id=uuid.UUID(_uuid(rnd)), unit_type="device_id", unit_id=unit, name="click", value=1.0,
            ts=BASE_TS + i * 1000, reason=reason,
        ).to_avro()  # fmt: skip
        scenario.records["unattributed_events"].append((unit.encode(), record))
        if rnd.random() < 0.2:  # a replay decided it again, identically or (replayed late) as late
            record = {**record, "reason": rnd.choice((reason, "late"))}
            scenario.records["unattributed_events"].append((unit.encode(), record))
        scenario.unattributed[record["event_id"]] = record["reason"]


def _uuid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _definitions(scenario: Scenario, key: str, metrics: ExperimentMetrics | None) -> None:
    spec = EXPERIMENTS[key]
    for revision in (1, 2):
        body = {
            "key": key, "revision": revision, "title": f"{key} r{revision}", "unit_type": "device_id",
            "scheme": "sha256-weights", "scheme_params": "{}", "fallback_variant": spec["fallback"],
            "variants": [{"name": n, "weight": w} for n, w in spec["variants"]], "state": "active",
            "attribution_window_ms": 86_400_000, "dedupe": "first_ever", "published_ts": BASE_TS + revision,
            "definition_hash": "0" * 64, "metrics": metrics.to_json() if metrics else "",
        }  # fmt: skip
        model = ExperimentDefinition.model_validate(body)
        record = model.model_copy(update={"definition_hash": model.digest()}).to_avro()
        scenario.records["experiment_definitions"].append((f"{key}:{revision}".encode(), record))


def _unit(scenario: Scenario, rnd: random.Random, key: str, unit: str, ts: int) -> None:
    spec = EXPERIMENTS[key]
    names = [n for n, _ in spec["variants"]]
    variant = rnd.choices(names, weights=[w for _, w in spec["variants"]])[0]
    exposure = FirstExposure(
        event_id=uuid.UUID(_uuid(rnd)), experiment=key, revision=1 if ts < BASE_TS + 300_000 else 2,
        variant=variant, unit_type="device_id", unit_id=unit, scheme="sha256-weights", client_ts=ts,
    ).to_avro()  # fmt: skip
    scenario.records["first_exposures"].append((unit.encode(), exposure))
    if rnd.random() < 0.1:  # the job folded later exposures in and re-emitted it
        exposure = {**exposure, "duplicates": rnd.randint(1, 5)}
        scenario.records["first_exposures"].append((unit.encode(), exposure))
    scenario.units[(key, unit)] = exposure
    _conversions(scenario, rnd, exposure, spec["rates"][variant])
    _flags(scenario, rnd, exposure)
    if rnd.random() < 0.03:
        _switch(scenario, rnd, exposure, [n for n in names if n != variant])


def _conversions(scenario: Scenario, rnd: random.Random, exposure: dict[str, Any], rate: float) -> None:
    if rnd.random() >= rate:
        return
    for n in range(1 if rnd.random() < 0.8 else 2):
        ts = exposure["client_ts"] + 60_000 * (n + 1)
        record = AttributedConversion(
            event_id=uuid.UUID(_uuid(rnd)), unit_type="device_id", unit_id=exposure["unit_id"], name="click",
            value=round(rnd.uniform(1, 50), 2), ts=ts, experiment=exposure["experiment"],
            revision=exposure["revision"], variant=exposure["variant"],
            exposure_event_id=uuid.UUID(exposure["event_id"]), exposure_ts=exposure["client_ts"],
            latency_ms=ts - exposure["client_ts"], late=rnd.random() < 0.05,
        ).to_avro()  # fmt: skip
        copies = 2 if rnd.random() < 0.05 else 1  # at-least-once delivery from the attribution job
        scenario.records["attributed_conversions"] += [(exposure["unit_id"].encode(), record)] * copies
        scenario.conversions[record["event_id"]] = record


def _flags(scenario: Scenario, rnd: random.Random, exposure: dict[str, Any]) -> None:
    if rnd.random() >= 0.04:
        return
    reasons = ["variant_mismatch", "rollout_mismatch"] if rnd.random() < 0.3 else ["variant_mismatch"]
    for reason in reasons:
        flag = AssignmentFlag(
            event_id=uuid.UUID(exposure["event_id"]), experiment=exposure["experiment"],
            revision=exposure["revision"], unit_type="device_id", unit_id=exposure["unit_id"],
            logged_variant=exposure["variant"], expected_variant=None, reason=reason,
            detail=f"{reason} for {exposure['unit_id']}", exposure_ts=exposure["client_ts"],
            flagged_ts=exposure["client_ts"] + 5,
        ).to_avro()  # fmt: skip
        copies = 2 if rnd.random() < 0.2 else 1
        scenario.records["assignment_flags"] += [(exposure["unit_id"].encode(), flag)] * copies
        scenario.flags.append(flag)


def _switch(scenario: Scenario, rnd: random.Random, exposure: dict[str, Any], others: list[str]) -> None:
    seen = [exposure["variant"]]
    for n, other in enumerate(rnd.sample(others, k=min(len(others), rnd.randint(1, 2)))):
        seen.append(other)
        flag = AssignmentFlag(
            event_id=uuid.UUID(_uuid(rnd)), experiment=exposure["experiment"], revision=exposure["revision"],
            unit_type="device_id", unit_id=exposure["unit_id"], logged_variant=other, expected_variant=seen[0],
            reason="multiple_variants", detail="variants seen: " + ", ".join(seen), variants_seen=list(seen),
            exposure_ts=exposure["client_ts"] + 1000 * (n + 1), flagged_ts=exposure["client_ts"] + 1000 * (n + 1),
        ).to_avro()  # fmt: skip
        scenario.records["variant_switches"].append((exposure["unit_id"].encode(), flag))
    scenario.switched.add((exposure["experiment"], exposure["unit_id"]))
