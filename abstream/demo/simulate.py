"""The seed tutorial's scenario as client traffic: visitors, both experiments, clicks at the true rates.

Every visitor sees the page once, exposed to ``moon_mars`` and ``white_gold_btn``, and does what the
experiments' metrics measure (``deploy/metrics``), at true rates that depend on the Moon/Mars variant
only (White/Gold has no effect): clicks "Reserve your spot" (``reserve_click``, 10% / 20% of visitors,
some twice), bounces (``bounce``, 30% in both: the guardrail holds), buys (``purchase`` with a value,
5% / 8%), clicks the white/gold button (``button_click`` with ``btn: white_gold``, 12%).
Clients misbehave as real ones do: some log an exposure twice, some flush a click before the exposure
that preceded it, some flush very late, and with ``faulty_client_rate`` an exposure is logged with a
variant other than the one its hash gives. The visitors are spread over the last two hours, so the
late clicks really are late for the jobs. ``Truth`` keeps what the pipeline should find.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.assigner import Assigner
from schemas.metrics import ExperimentMetrics, MetricSpec

__all__ = ["BOUNCE_RATE", "CLICK_RATES", "GOLD_BUTTON_RATE", "PURCHASE_RATES", "Send", "Truth", "simulate"]

CLICK_RATES = {"Moon": 0.10, "Mars": 0.20}
PURCHASE_RATES = {"Moon": 0.05, "Mars": 0.08}
BOUNCE_RATE = 0.30
GOLD_BUTTON_RATE = 0.12
_SECOND_CLICK_RATE = 0.3
SPAN = timedelta(hours=2)
_DUPLICATE_RATE = 0.1
_EARLY_CLICK_RATE = 0.1  # flushed before the exposure
_LATE_CLICK_RATE = 0.05  # flushed at the very end, with its original time


@dataclass(frozen=True)
class Send:
    """One thing a client logs: ``kind`` is "exposure" or "event", ``fields`` the logger's arguments."""

    kind: str
    fields: dict[str, Any]
    send_at: datetime


@dataclass
class Truth:
    """What the pipeline must report: per experiment and variant, units, converting units and metric values."""

    units: Counter[tuple[str, str]] = field(default_factory=Counter)
    converters: Counter[tuple[str, str]] = field(default_factory=Counter)  # units with any event
    conversions: Counter[tuple[str, str]] = field(default_factory=Counter)  # events
    faulty_exposures: Counter[str] = field(default_factory=Counter)
    shown: dict[str, dict[str, str]] = field(default_factory=dict)  # unit -> experiment -> variant logged
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # unit -> its events
    metrics: dict[str, ExperimentMetrics] = field(default_factory=dict)  # experiment -> what it measures
    clicks: int = 0  # events of every kind
    late_clicks: int = 0

    def metric_means(self, key: str, spec: MetricSpec) -> dict[str, float]:
        """Per variant of ``key``: the metric over its units, as the report must compute it from the sample."""
        sums: dict[str, list[float]] = {}
        for unit, shown in self.shown.items():
            x, y = spec.unit_value(self.events.get(unit, []))
            cell = sums.setdefault(shown[key], [0.0, 0.0, 0.0])
            cell[0], cell[1], cell[2] = cell[0] + x, cell[1] + y, cell[2] + 1
        return {v: (x / y if spec.type == "ratio" else x / n) for v, (x, y, n) in sums.items() if y or n}

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (key, variant), units in sorted(self.units.items()):
            variants = out.setdefault(key, {"variants": {}, "faulty_exposures": self.faulty_exposures[key]})["variants"]
            variants[variant] = {
                "units": units,
                "converting_units": self.converters[(key, variant)],
                "conversions": self.conversions[(key, variant)],
            }
        for key, block in self.metrics.items():
            out[key]["metrics"] = {spec.key: self.metric_means(key, spec) for _, spec in block.in_order()}
        return out


def simulate(
    assigner: Assigner, visitors: int, seed: int, faulty_client_rate: float, now: datetime
) -> tuple[list[Send], Truth]:
    """Everything the clients log, in the order they send it, and the truth it adds up to."""
    rng, truth, sends = random.Random(seed), Truth(), []  # noqa: S311 - a simulation, not secrets
    truth.metrics = {key: assigner.experiments[key].metrics for key in ("moon_mars", "white_gold_btn")}
    start = now - SPAN
    for i in range(visitors):
        seen_at = start + SPAN * (i / max(visitors, 1))
        sends += list(_visit(assigner, rng, f"visitor-{seed}-{i:06d}", seen_at, faulty_client_rate, truth))
    late = [s for s in sends if s.send_at > now]
    on_time = sorted((s for s in sends if s.send_at <= now), key=lambda s: s.send_at)
    return on_time + late, truth


def _visit(
    assigner: Assigner, rng: random.Random, unit: str, at: datetime, faulty: float, truth: Truth
) -> Iterator[Send]:
    shown: dict[str, str] = truth.shown.setdefault(unit, {})
    for key in ("moon_mars", "white_gold_btn"):
        result = assigner.assign(key, unit, log=False, at=at)
        variant = result.variant
        if rng.random() < faulty:
            variant = rng.choice([v.name for v in assigner.experiments[key].variants if v.name != variant])
        shown[key] = variant
        truth.units[(key, variant)] += 1
        definition = assigner.experiments[key]
        fields = {"experiment": key, "variant": variant, "unit_id": unit, "revision": result.revision,
                  "unit_type": definition.unit_type, "scheme": definition.scheme}  # fmt: skip
        copies = 2 if rng.random() < _DUPLICATE_RATE else 1
        for n in range(copies):
            truth.faulty_exposures[key] += variant != result.variant
            yield Send(
                "exposure",
                {**fields, "client_ts": at + timedelta(seconds=30 * n)},
                at + timedelta(seconds=rng.uniform(0, 20)),
            )
    for name, value, properties in _actions(rng, shown["moon_mars"]):
        yield _event(rng, unit, at, name, value, properties, truth)
    if unit in truth.events:
        for key, variant in shown.items():
            truth.converters[(key, variant)] += 1
            truth.conversions[(key, variant)] += len(truth.events[unit])


def _actions(rng: random.Random, trip: str) -> Iterator[tuple[str, float | None, dict[str, str]]]:
    """What one visitor does on the page: (event name, value, properties), at the true rates."""
    if rng.random() < CLICK_RATES[trip]:
        for _ in range(2 if rng.random() < _SECOND_CLICK_RATE else 1):
            yield "reserve_click", 1.0, {"btn_type": trip}
    if rng.random() < BOUNCE_RATE:
        yield "bounce", None, {}
    if rng.random() < PURCHASE_RATES[trip]:
        yield "purchase", round(rng.lognormvariate(4.0, 0.6), 2), {"trip": trip}
    if rng.random() < GOLD_BUTTON_RATE:
        yield "button_click", 1.0, {"btn": "white_gold"}


def _event(
    rng: random.Random,
    unit: str,
    at: datetime,
    name: str,
    value: float | None,
    properties: dict[str, str],
    truth: Truth,
) -> Send:
    truth.clicks += 1
    clicked = at + timedelta(seconds=rng.uniform(5, 300))
    truth.events.setdefault(unit, []).append(
        {
            "name": name,
            "value": value,
            "properties": properties,
            "latency_ms": (clicked - at) // timedelta(milliseconds=1),
        }
    )
    if rng.random() < _LATE_CLICK_RATE:
        truth.late_clicks += 1
        send_at = datetime.max.replace(tzinfo=UTC)  # the client flushes after everything else
    elif rng.random() < _EARLY_CLICK_RATE:
        send_at = at - timedelta(seconds=1)  # flushed before the exposure it follows
    else:
        send_at = clicked + timedelta(seconds=rng.uniform(0, 20))
    fields = {"unit_id": unit, "name": name, "value": value, "ts": clicked, "unit_type": "device_id",
              "properties": properties}  # fmt: skip
    return Send("event", fields, send_at)
