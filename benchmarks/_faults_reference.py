"""The fault suite's truth: what the clients logged, and the report and aggregates it must add up to.

``Logged`` keeps every record a logger accepted (with the event id it returned), whatever happened to the
pipeline afterwards. ``expected`` computes from it, in plain Python and at once (no state machine, no
watermark bookkeeping beyond the one rule that makes an event late), every number the fault suite compares:
per experiment and variant the units of each unit's earliest first exposure, the units with an attributed
event and the attributed events (conversions within the attribution window of that first exposure), the late
ones, the metric sums; per experiment the mismatched exposures and the units seen in several variants; the
events attributed to no experiment, by reason. ``compare`` flattens the store's numbers the same way and
returns what is missing, what is counted twice and which numbers differ.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

from producers.assigner import Assigner
from sinks.aggregates import BUILTIN_METRIC

__all__ = ["Figures", "Logged", "compare", "expected", "flatten", "moved"]

_REL_TOL = 1e-9
_POLICIES = ("first_seen", "exclude")


@dataclass
class Logged:
    """What the loggers accepted: exposures and events as the reference needs them, in send order."""

    exposures: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # "late": sent after the jobs caught up

    def exposure(self, event_id: str, fields: Mapping[str, Any], client_ts: int) -> None:
        keep = ("experiment", "variant", "unit_id", "revision")
        self.exposures.append({"event_id": event_id, "client_ts": client_ts, **{k: fields[k] for k in keep}})

    def event(self, event_id: str, fields: Mapping[str, Any], ts: int, *, late: bool) -> None:
        keep = ("unit_id", "name", "value", "properties")
        self.events.append({"event_id": event_id, "ts": ts, "late": late, **{k: fields[k] for k in keep}})


def _partition(unit: str, partitions: int) -> int:
    return (murmur2(unit.encode()) & 0x7FFFFFFF) % partitions


def _late_events(logged: Logged, lateness_ms: int, partitions: int) -> tuple[set[str], dict[int, int]]:
    """Event ids the jobs find late (sent after the jobs caught up, older than the watermark minus the
    lateness), and each partition's final watermark.

    A partition's watermark is the smaller of its two inputs' largest times so far (``stream_jobs.unit_agent``):
    every exposure is in by then; the events' largest time grows with the late events themselves. An event of
    the first phase is never late: its delay is the faults', seconds to a minute of wall time, and so of event
    time (``_faults_traffic``), far inside the allowed lateness.
    """
    top_x: dict[int, int] = defaultdict(int)
    top_e: dict[int, int] = defaultdict(int)
    for e in logged.exposures:
        p = _partition(e["unit_id"], partitions)
        top_x[p] = max(top_x[p], e["client_ts"])
    late = set()
    for ev in sorted(logged.events, key=lambda ev: ev["late"]):  # stable: send order within each phase
        p = _partition(ev["unit_id"], partitions)
        top_e[p] = max(top_e[p], ev["ts"])
        if ev["late"] and min(top_x[p], top_e[p]) - ev["ts"] > lateness_ms:
            late.add(ev["event_id"])
    return late, {p: min(top_x[p], top_e[p]) for p in top_x.keys() | top_e.keys()}


def expected(logged: Logged, assigner: Assigner, *, lateness_ms: int, partitions: int) -> dict[tuple[Any, ...], Any]:
    """Every number ``flatten`` reads from a store, as the clients' records make it (see the module doc)."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    variants: dict[tuple[str, str], set[str]] = defaultdict(set)
    out: dict[tuple[Any, ...], Any] = {}
    for e in logged.exposures:
        key = (e["experiment"], e["unit_id"])
        variants[key].add(e["variant"])
        if key not in first or (e["client_ts"], e["event_id"]) < (first[key]["client_ts"], first[key]["event_id"]):
            first[key] = e
        if e["variant"] != assigner.assign(e["experiment"], e["unit_id"], log=False).variant:
            _add(out, ("mismatches", e["experiment"]), 1)
    multi = {key for key, seen in variants.items() if len(seen) > 1}
    late, watermarks = _late_events(logged, lateness_ms, partitions)
    attributed: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    exposed = {e["unit_id"] for e in logged.exposures}
    for ev in logged.events:
        hit = False
        for experiment, definition in assigner.experiments.items():
            f = first.get((experiment, ev["unit_id"]))
            if f is not None and f["client_ts"] <= ev["ts"] <= f["client_ts"] + definition.attribution_window_ms:
                attributed[(experiment, ev["unit_id"])].append({**ev, "latency_ms": ev["ts"] - f["client_ts"]})
                hit = True
        if hit:
            continue
        if ev["event_id"] in late:  # decided on arrival: "late" if the unit has an exposure (all are in by then)
            _add(out, ("unattributed", "late" if ev["unit_id"] in exposed else "never_exposed"), 1)
        elif watermarks.get(_partition(ev["unit_id"], partitions), 0) - ev["ts"] > lateness_ms:
            _add(out, ("unattributed", "outside_window" if ev["unit_id"] in exposed else "never_exposed"), 1)
        else:  # still buffered: the watermark has not passed it yet, so it is in no report
            _add(out, ("pending",), 1)
    for key, f in first.items():
        experiment = key[0]
        events = attributed.get(key, [])
        cells = _unit_cells(assigner, experiment, events, late)
        for policy in _POLICIES:
            if policy == "exclude" and key in multi:
                continue
            for name, value in (("units", 1), ("converting_units", int(bool(events))), ("conversions", len(events))):
                _add(out, ("report", policy, experiment, f["variant"], name), value)
            _add(out, ("report", policy, experiment, f["variant"], "late_conversions"), cells[BUILTIN_METRIC][2])
        tables = ("stats", "multi") if key in multi else ("stats",)
        for table in tables:
            _add(out, (table, "units", experiment, f["variant"]), 1)
            for metric, (nonzero, x, y) in cells.items():
                _add(out, (table, metric, experiment, f["variant"], "nonzero"), nonzero)
                _add(out, (table, metric, experiment, f["variant"], "sum_x"), x)
                _add(out, (table, metric, experiment, f["variant"], "sum_y"), y)
    for experiment, _unit in multi:
        _add(out, ("multi_variant_units", experiment), 1)
    _metric_values(out, assigner)
    return out


def _unit_cells(
    assigner: Assigner, experiment: str, events: list[dict[str, Any]], late: set[str]
) -> dict[str, tuple[int, float, float]]:
    """Per metric of the experiment (and the built-in conversions): (x != 0, x, y) of one unit."""
    cells = {BUILTIN_METRIC: (int(bool(events)), float(len(events)), float(sum(e["event_id"] in late for e in events)))}
    metrics = assigner.experiments[experiment].metrics
    for _, spec in metrics.in_order() if metrics is not None else ():
        if spec.cap is not None and spec.cap.value is None:  # a percentile cap needs every unit: not compared
            continue
        x, y = spec.unit_value(events)
        cells[spec.key] = (int(x != 0), x, y)
    return cells


def _metric_values(out: dict[tuple[Any, ...], Any], assigner: Assigner) -> None:
    """The report's metric values per policy and variant, from the sums (a ratio: Σx/Σy; else Σx/units)."""
    for experiment, definition in assigner.experiments.items():
        metrics = definition.metrics
        for _, spec in metrics.in_order() if metrics is not None else ():
            for policy in _POLICIES:
                for variant in {k[3] for k in out if k[:3] == ("report", policy, experiment)}:
                    units = out.get(("report", policy, experiment, variant, "units"), 0)
                    x, y = (_sum(out, experiment, spec.key, variant, policy, s) for s in ("sum_x", "sum_y"))
                    value = (x / y if y else None) if spec.type == "ratio" else (x / units if units else None)
                    out[("metric", policy, experiment, spec.key, variant)] = value


def _sum(out: Mapping[Any, Any], experiment: str, metric: str, variant: str, policy: str, s: str) -> float:
    total = out.get(("stats", metric, experiment, variant, s), 0.0)
    return total - out.get(("multi", metric, experiment, variant, s), 0.0) if policy == "exclude" else total


def _add(out: dict[Any, Any], key: tuple[Any, ...], value: float) -> None:
    out[key] = out.get(key, 0) + value


def flatten(snapshot: Mapping[str, Any]) -> dict[tuple[Any, ...], Any]:
    """The store's numbers (``faults.py snapshot``) under the keys ``expected`` uses."""
    out: dict[tuple[Any, ...], Any] = {}
    for policy in _POLICIES:
        report = snapshot["report"][policy]
        for experiment, block in report["experiments"].items():
            if policy == "first_seen":
                out[("mismatches", experiment)] = block.get("mismatches") or 0
                out[("multi_variant_units", experiment)] = block.get("multi_variant_units") or 0
            for variant, cells in block["variants"].items():
                for name in ("units", "converting_units", "conversions", "late_conversions"):
                    out[("report", policy, experiment, variant, name)] = cells.get(name) or 0
            for metric in block.get("metrics", []):
                for variant, cells in metric["variants"].items():
                    out[("metric", policy, experiment, metric["key"], variant)] = cells.get("value")
        if policy == "first_seen":
            for reason, events in report.get("unattributed_events", {}).items():
                out[("unattributed", reason)] = events
    for table, rows in snapshot["aggregates"].items():
        for row in rows:
            if table.endswith("exposure_stats"):
                experiment, variant, units, _exposures = row
                out[(_table(table), "units", experiment, variant)] = units
            else:
                experiment, metric, variant, nonzero, x, y = row
                for name, value in (("nonzero", nonzero), ("sum_x", x), ("sum_y", y)):
                    out[(_table(table), metric, experiment, variant, name)] = value
    return out


def _table(name: str) -> str:
    return "multi" if name.startswith("multi_") else "stats"


@dataclass
class Figures:
    """What a scenario prints: records lost, records counted twice, numbers off (the first few named)."""

    lost: int = 0
    double: int = 0
    moved: int = 0
    examples: list[str] = field(default_factory=list)


def _records(numbers: Mapping[Any, Any]) -> Counter[tuple[Any, ...]]:
    """The numbers that count records (a shortfall is a record lost, an excess one counted twice).

    First exposures (units per variant), conversions (the built-in metric's Σx), mismatched exposures, and
    the events attributed to no experiment in total: an event counted under another reason is a number that
    moved, not a record lost.
    """
    out: Counter[tuple[Any, ...]] = Counter()
    for key, value in numbers.items():
        conversions = key[0] in ("stats", "multi") and key[1] == BUILTIN_METRIC and key[-1] == "sum_x"
        if (key[0] in ("stats", "multi") and key[1] == "units") or conversions or key[0] == "mismatches":
            out[key] += round(value or 0)
        elif key[0] == "unattributed":
            out[("unattributed",)] += round(value or 0)
    return out


def compare(want: Mapping[Any, Any], got: Mapping[Any, Any]) -> Figures:
    """Lost and double from the record counts; moved: every compared number that differs from the reference."""
    figures = Figures()
    wanted, found = _records(want), _records(got)

    # Record counts first, then the report's own counts: the first examples say what went wrong.
    def order(key: tuple[Any, ...]) -> tuple[bool, bool, str]:
        return key not in wanted and key not in found, key[0] != "report", repr(key)

    for key in sorted(set(want) | set(got), key=order):
        if key == ("pending",):  # in no report yet (``expected``)
            continue
        w, g = want.get(key), got.get(key)
        if not _same(w, g):
            figures.moved += 1
            figures.examples.append(f"{'/'.join(map(str, key))}: {g} instead of {w}")
    for key in set(wanted) | set(found):
        figures.lost += max(0, wanted[key] - found[key])
        figures.double += max(0, found[key] - wanted[key])
    return figures


def moved(before: Mapping[Any, Any], after: Mapping[Any, Any]) -> Figures:
    """Numbers that differ between two snapshots of the same store (a replay must move none)."""
    figures = Figures()
    for key in sorted(set(before) | set(after), key=repr):
        if not _same(before.get(key), after.get(key)):
            figures.moved += 1
            if len(figures.examples) < 8:
                figures.examples.append(f"{'/'.join(map(str, key))}: {before.get(key)} -> {after.get(key)}")
    return figures


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return (a or 0) == (b or 0)
    return math.isclose(float(a), float(b), rel_tol=_REL_TOL, abs_tol=1e-9)
