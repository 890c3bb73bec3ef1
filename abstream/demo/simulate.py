"""The seed tutorial's scenario as client traffic: visitors, both experiments, clicks at the true rates.

Every visitor sees the page once, exposed to ``moon_mars`` and ``white_gold_btn``, and clicks the
button with the probability of the Moon/Mars variant they saw (10% / 20%; White/Gold has no effect).
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

__all__ = ["CLICK_RATES", "Send", "Truth", "simulate"]

CLICK_RATES = {"Moon": 0.10, "Mars": 0.20}
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
    """What the pipeline must report: per experiment and variant, units and converting units."""

    units: Counter[tuple[str, str]] = field(default_factory=Counter)
    converters: Counter[tuple[str, str]] = field(default_factory=Counter)
    faulty_exposures: Counter[str] = field(default_factory=Counter)
    clicks: int = 0
    late_clicks: int = 0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (key, variant), units in sorted(self.units.items()):
            variants = out.setdefault(key, {"variants": {}, "faulty_exposures": self.faulty_exposures[key]})["variants"]
            variants[variant] = {"units": units, "converting_units": self.converters[(key, variant)]}
        return out


def simulate(
    assigner: Assigner, visitors: int, seed: int, faulty_client_rate: float, now: datetime
) -> tuple[list[Send], Truth]:
    """Everything the clients log, in the order they send it, and the truth it adds up to."""
    rng, truth, sends = random.Random(seed), Truth(), []  # noqa: S311 - a simulation, not secrets
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
    shown: dict[str, str] = {}
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
    yield from _click(rng, unit, at, shown, truth)


def _click(rng: random.Random, unit: str, at: datetime, shown: dict[str, str], truth: Truth) -> Iterator[Send]:
    if rng.random() >= CLICK_RATES[shown["moon_mars"]]:
        return
    truth.clicks += 1
    for key, variant in shown.items():
        truth.converters[(key, variant)] += 1
    clicked = at + timedelta(seconds=rng.uniform(5, 300))
    if rng.random() < _LATE_CLICK_RATE:
        truth.late_clicks += 1
        send_at = datetime.max.replace(tzinfo=UTC)  # the client flushes after everything else
    elif rng.random() < _EARLY_CLICK_RATE:
        send_at = at - timedelta(seconds=1)  # flushed before the exposure it follows
    else:
        send_at = clicked + timedelta(seconds=rng.uniform(0, 20))
    fields = {"unit_id": unit, "name": "button_click", "value": 1.0, "ts": clicked, "unit_type": "device_id",
              "properties": {"btn_type": shown["moon_mars"]}}  # fmt: skip
    yield Send("event", fields, send_at)
