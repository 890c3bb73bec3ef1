"""Proof that the benchmark's bulk aggregates equal the sink's: one detail, filled both ways, compared.

Database ``<prefix>_bulk`` gets the generated detail and ``fill_aggregates``; ``<prefix>_sink`` gets the
same rows delivered as the sink delivers them (shuffled, re-emissions in other batches, random batch
sizes, each insert followed by ``UnitAggregates.after_insert``). Then every per-unit state and every
statistics cell (per experiment, metric, version, variant and minute) must match.

    problems = check_equivalence(connect_to, units=20_000)   # [] when they are equal
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from _report_data import Population, define, fill_aggregates, generate

from sinks.aggregates import UnitAggregates
from sinks.migrator import migrate
from sinks.tables import TABLES

__all__ = ["check_equivalence"]

_TOLERANCE = 1e-9
_QUERIES = {
    "exposure_units": """SELECT experiment, unit_id, variant, revision, first_ts, exposures, multi
                         FROM exposure_units FINAL""",
    "metric_units": """SELECT experiment, unit_id, metric, version, variant, minute, x, y, multi
                       FROM metric_units FINAL""",
    "exposure_stats": """SELECT experiment, revision, variant, minute, sum(units), sum(exposures)
                         FROM exposure_stats GROUP BY ALL HAVING sum(units) != 0 OR sum(exposures) != 0""",
    "metric_stats": """SELECT experiment, metric, version, variant, minute, sum(nonzero), sum(sum_x), sum(sum_x2),
                              sum(sum_y), sum(sum_y2), sum(sum_xy)
                       FROM metric_stats GROUP BY ALL""",
}
_QUERIES |= {f"multi_{t}": _QUERIES[t].replace("FROM ", "FROM multi_") for t in ("exposure_stats", "metric_stats")}
_KEY_COLUMNS = {"exposure_units": 2, "metric_units": 4, "exposure_stats": 4, "metric_stats": 5}
_KEY_COLUMNS |= {f"multi_{table}": _KEY_COLUMNS[table] for table in ("exposure_stats", "metric_stats")}


def _populations(units: int) -> list[Population]:
    return [Population("big", units), *(Population(f"small_{i:02d}", 500) for i in range(3))]


def check_equivalence(connect_to: Callable[[str], Any], *, units: int, prefix: str = "check") -> list[str]:
    """The differences between the bulk path and the sink's path at ``units`` units (empty: equal)."""
    bulk, sink = connect_to(f"{prefix}_bulk"), connect_to(f"{prefix}_sink")
    for client in (bulk, sink):
        migrate(client)
    for population in _populations(units):
        generate(bulk, population)
        fill_aggregates(bulk, population.experiment, population.units)
        define(sink, population.experiment)
    _deliver(bulk, sink)
    return [problem for table in _QUERIES for problem in _compare(table, bulk, sink)]


def _deliver(source: Any, sink: Any) -> None:
    """The source's detail into the sink's store in shuffled batches, each followed by the aggregates' update."""
    aggregates, rnd = UnitAggregates(sink), random.Random(7)
    for role in ("first_exposures", "attributed_conversions", "variant_switches", "assignment_flags"):
        spec = TABLES[role]
        rows = list(source.query(f"SELECT {', '.join(spec.insert_columns)} FROM {spec.table}").result_rows)
        rnd.shuffle(rows)
        for n, batch in enumerate(_batches(rows, rnd)):
            token = f"{role}/0/{n}"
            sink.insert(
                spec.table, batch, column_names=spec.insert_columns, settings={"insert_deduplication_token": token}
            )
            aggregates.after_insert(spec.table, batch, token=token)


def _batches(rows: Sequence[Any], rnd: random.Random) -> Iterator[list[Any]]:
    start = 0
    while start < len(rows):
        size = rnd.randint(1, 4000)
        yield list(rows[start : start + size])
        start += size


def _compare(table: str, bulk: Any, sink: Any) -> list[str]:
    keys = _KEY_COLUMNS[table]
    got = {tuple(row[:keys]): row[keys:] for row in bulk.query(_QUERIES[table]).result_rows}
    want = {tuple(row[:keys]): row[keys:] for row in sink.query(_QUERIES[table]).result_rows}
    want = {key: values for key, values in want.items() if any(values)}  # a cell whose units all moved away
    problems = [f"{table}: {key} only in the sink's ({want[key]})" for key in sorted(set(want) - set(got))]
    problems += [f"{table}: {key} only in the bulk ({got[key]})" for key in sorted(set(got) - set(want))]
    for key in sorted(set(got) & set(want)):
        if not all(_close(a, b) for a, b in zip(got[key], want[key], strict=True)):
            problems.append(f"{table}: {key}: bulk {got[key]} != sink {want[key]}")
    if not got:
        problems.append(f"{table}: empty")
    return problems[:20]


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=_TOLERANCE, abs_tol=1e-6)
    return bool(a == b)
