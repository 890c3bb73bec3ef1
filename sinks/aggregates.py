"""Per-unit state and per-variant sufficient statistics, kept exact batch by batch (migration 0010).

After the sink inserts a batch of first exposures or conversions, :class:`UnitAggregates` recomputes
the state of the units in it from the deduplicated detail, compares it with their stored state and
inserts the differences into ``exposure_stats`` / ``metric_stats`` (SummingMergeTree), then the
changed units' state. The differences go in under a token derived from the batch's, so a retry after
a crash between the two inserts is dropped; a replay of any kind (the sink's group reset, the jobs
re-emitting conversions at new offsets) recomputes the state it already stored and inserts nothing.

A unit's metric values come from the conversions attributed to its earliest first exposure, as the
metric's SQL (:func:`metric_sql`) computes them; they are recomputed after its conversions and after
its first exposures (a conversion may reach the sink first, a first exposure may be corrected). A
metric version first met (a new experiment, a changed definition, a store that predates metrics) is
computed over all of the experiment's units once (``metric_backfills`` records it), then per batch.
The built-in metric ``_conversions`` (x = conversions, y = late conversions) gives the report's
conversion counts for every experiment.

A multi-variant unit (a ``variant_switches`` row with reason ``multiple_variants``) has its share in
``multi_exposure_stats`` / ``multi_metric_stats`` too (migration 0011), so the ``exclude`` policy is a
difference of aggregates; a switch flag that arrives after the unit's state moves its share there.
Events attributed to no experiment are counted per (reason, name) the same way (migration 0013).

    aggregates = UnitAggregates(client)
    aggregates.after_insert("conversions", rows, token=batch.token)
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.metrics import ExperimentMetrics, MetricSide, MetricSpec

__all__ = ["BUILTIN_METRIC", "CompiledMetric", "UnitAggregates", "compile_metric", "metric_sql"]

log = logging.getLogger(__name__)

BUILTIN_METRIC = "_conversions"
"""Every experiment's conversions per unit (x) and the late ones (y): the report's conversion counts."""
_BUILTIN_VERSION = "1"
_CHUNK = 5000
_INSERT = {"async_insert": 0, "insert_deduplicate": 1}
_REL_TOL = 1e-12  # a recomputed sum that differs by less is the same value (summation order)


@dataclass(frozen=True, slots=True)
class CompiledMetric:
    """A metric as SQL over ``unit_conversions``: the per-unit x and y expressions and their parameters."""

    key: str
    version: str
    x: str
    y: str
    params: Mapping[str, Any]


def _side(side: MetricSide, prefix: str, window_ms: int | None) -> tuple[str, str, dict[str, Any]]:
    """(condition, aggregate) SQL of one side, with its parameters named under ``prefix``."""
    params: dict[str, Any] = {f"{prefix}_events": side.events}
    terms = [f"name IN {{{prefix}_events:Array(String)}}"]
    for i, (prop, values) in enumerate(side.filter.items()):
        params[f"{prefix}_p{i}"], params[f"{prefix}_v{i}"] = prop, values
        terms.append(f"properties[{{{prefix}_p{i}:String}}] IN {{{prefix}_v{i}:Array(String)}}")
    if window_ms is not None:
        params[f"{prefix}_window"] = window_ms
        terms.append(f"latency_ms <= {{{prefix}_window:Int64}}")
    condition = " AND ".join(terms)
    aggregate = (
        f"toFloat64(countIf({condition}))" if side.aggregation == "count" else f"sumIf(ifNull(value, 0.), {condition})"
    )
    return condition, aggregate, params


def compile_metric(spec: MetricSpec, name: str) -> CompiledMetric:
    """The SQL of ``spec``; ``name`` prefixes its parameters (unique per query)."""
    condition, numerator, params = _side(spec.numerator, f"{name}_n", spec.window_ms)
    if spec.type == "proportion":
        x = f"toFloat64(countIf({condition}) > 0)"
    elif spec.cap is not None and spec.cap.value is not None:
        params[f"{name}_cap"] = spec.cap.value
        x = f"least({numerator}, {{{name}_cap:Float64}})"
    else:
        x = numerator
    y = "0."
    if spec.denominator is not None:
        _, y, more = _side(spec.denominator, f"{name}_d", spec.window_ms)
        params.update(more)
    return CompiledMetric(spec.key, spec.version, x, y, params)


_BUILTIN = CompiledMetric(BUILTIN_METRIC, _BUILTIN_VERSION, "toFloat64(count())", "toFloat64(countIf(late))", {})


def metric_sql(metrics: Sequence[CompiledMetric]) -> tuple[str, dict[str, Any]]:
    """One query: per unit of ``{experiment}`` in ``{units}``, its variant, minute and every metric's x, y.

    Only the conversions attributed to the unit's earliest first exposure count (as in the report): when
    the jobs correct a first exposure (an earlier one arrived late), a conversion its window no longer holds
    stays attributed to the superseded one and drops out.
    """
    columns = ", ".join(f"round({m.x}, 9), round({m.y}, 9)" for m in metrics)
    params: dict[str, Any] = {}
    for metric in metrics:
        params.update(metric.params)
    return _METRICS_NEW.replace("/*columns*/", columns), params


# The metrics' values are bound parameters; only their expressions take the place of /*columns*/.
# A unit's variant, minute and counted conversions are those of its earliest first exposure.
_METRICS_NEW = """
SELECT f.unit_id, any(f.variant), toDateTime(toStartOfMinute(any(f.first_ts)), 'UTC'), /*columns*/
FROM (
    SELECT unit_id, argMin(event_id, (exposure_ts, event_id)) AS first_event_id,
           argMin(variant, (exposure_ts, event_id)) AS variant, min(exposure_ts) AS first_ts
    FROM first_exposures FINAL
    WHERE experiment = {experiment:String} AND unit_id IN {units:Array(String)}
    GROUP BY unit_id
) AS f
INNER JOIN (
    SELECT unit_id, exposure_event_id, name, value, properties, latency_ms, late
    FROM unit_conversions FINAL
    WHERE experiment = {experiment:String} AND unit_id IN {units:Array(String)}
) AS c ON c.unit_id = f.unit_id AND c.exposure_event_id = f.first_event_id
GROUP BY f.unit_id
"""
_EXPOSURES_NEW = """
SELECT unit_id, argMin(variant, (exposure_ts, event_id)), argMin(revision, (exposure_ts, event_id)),
       min(exposure_ts), sum(1 + duplicates)
FROM first_exposures FINAL
WHERE experiment = {experiment:String} AND unit_id IN {units:Array(String)}
GROUP BY unit_id
"""
_EXPOSURES_OLD = """
SELECT unit_id, variant, revision, first_ts, exposures, multi FROM exposure_units FINAL
WHERE experiment = {experiment:String} AND unit_id IN {units:Array(String)}
"""
_METRICS_OLD = """
SELECT unit_id, metric, version, variant, minute, x, y, multi FROM metric_units FINAL
WHERE experiment = {experiment:String} AND unit_id IN {units:Array(String)}
"""
_MULTI = """
SELECT DISTINCT unit_id FROM variant_switches
WHERE experiment = {experiment:String} AND unit_id IN {units:Array(String)} AND reason = 'multiple_variants'
"""
_UNATTRIBUTED_NEW = "SELECT event_id, reason, name FROM unattributed_events FINAL WHERE event_id IN {ids:Array(UUID)}"
_UNATTRIBUTED_OLD = "SELECT event_id, reason, name FROM unattributed_states FINAL WHERE event_id IN {ids:Array(UUID)}"
_DEFINITIONS = "SELECT key, argMax(metrics, revision) FROM experiment_definitions FINAL GROUP BY key"
_BACKFILLED = "SELECT DISTINCT experiment, metric, version FROM metric_backfills"
_UNITS_WITH_CONVERSIONS = "SELECT DISTINCT unit_id FROM unit_conversions WHERE experiment = {experiment:String}"
_UNITS_WITH_EXPOSURES = "SELECT DISTINCT unit_id FROM first_exposures WHERE experiment = {experiment:String}"
_EXPOSURES = ("_exposures", "1")  # the exposure state's entry in metric_backfills

_EXPOSURE_STATS = ["experiment", "revision", "variant", "minute", "units", "exposures"]
_EXPOSURE_UNITS = ["experiment", "unit_id", "variant", "revision", "first_ts", "exposures", "multi", "updated"]
_METRIC_STATS = ["experiment", "metric", "version", "variant", "minute", "nonzero",
                 "sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy"]  # fmt: skip
_METRIC_UNITS = ["experiment", "unit_id", "metric", "version", "variant", "minute", "x", "y", "multi", "updated"]

# Where the sink's rows keep the experiment and the unit (insert column order, sinks/tables.py).
_UNIT_COLUMNS = {"first_exposures": (0, 1), "conversions": (0, 2), "variant_switches": (0, 5)}
_SWITCH_REASON = 2  # variant_switches rows: only multiple_variants makes a multi-variant unit


def _by_experiment(rows: Iterable[Sequence[Any]], table: str) -> dict[str, list[str]]:
    experiment_at, unit_at = _UNIT_COLUMNS[table]
    units: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if table != "variant_switches" or row[_SWITCH_REASON] == "multiple_variants":
            units[row[experiment_at]].add(row[unit_at])
    return {experiment: sorted(found) for experiment, found in units.items()}


def _chunks(units: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(units), _CHUNK):
        yield units[start : start + _CHUNK]


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=_REL_TOL)


class UnitAggregates:
    """Keeps the aggregate tables of migration 0010 equal to the deduplicated detail; see the module docstring."""

    def __init__(self, client: Any, *, clock: Any = time.time_ns) -> None:
        self._client, self._clock = client, clock
        self._metrics: dict[str, ExperimentMetrics] | None = None  # experiment -> latest revision's metrics
        self._backfilled: set[tuple[str, str, str]] | None = None

    def after_insert(self, table: str, rows: Sequence[Sequence[Any]], *, token: str) -> None:
        """Bring the aggregates up to date with a batch just inserted into ``table``."""
        if table == "experiment_definitions":
            self._metrics = None  # the next conversions batch (or backfill) reads them again
            return
        if table == "unattributed_events":
            ids = sorted({str(row[0]) for row in rows})
            for n, chunk in enumerate(_chunks(ids)):
                self._update_unattributed(chunk, token=f"{token}/{n}")
            return
        if table not in _UNIT_COLUMNS:
            return
        for experiment, units in _by_experiment(rows, table).items():
            if table == "first_exposures":
                self._backfill_exposures(experiment)
            metrics = self._compiled(experiment)
            for n, chunk in enumerate(_chunks(units)):
                part = f"{token}/{experiment}/{n}"
                # A unit's (earlier) first exposure decides what its values count; a switch flag, where they go.
                multi = self._multi(experiment, chunk)  # read once for both updates
                if table != "conversions":
                    self._update_exposures(experiment, chunk, token=part, multi=multi)
                self._update_metrics(experiment, chunk, metrics, token=f"{part}/metrics", multi=multi)

    def _done(self) -> set[tuple[str, str, str]]:
        if self._backfilled is None:
            self._backfilled = {tuple(row) for row in self._client.query(_BACKFILLED).result_rows}
        return self._backfilled

    def _mark_done(self, experiment: str, entries: Sequence[tuple[str, str]]) -> None:
        done = [[experiment, key, version] for key, version in entries]
        self._client.insert("metric_backfills", done, column_names=["experiment", "metric", "version"])
        self._done().update((experiment, key, version) for key, version in entries)

    def _multi(self, experiment: str, units: Sequence[str]) -> set[str]:
        """The multi-variant units among ``units``."""
        params = {"experiment": experiment, "units": list(units)}
        return {row[0] for row in self._client.query(_MULTI, parameters=params).result_rows}

    def _units(self, sql: str, experiment: str) -> list[str]:
        return sorted(row[0] for row in self._client.query(sql, parameters={"experiment": experiment}).result_rows)

    def _backfill_exposures(self, experiment: str) -> None:
        """The exposure state of every unit of an experiment first met (a store older than it has some)."""
        if (experiment, *_EXPOSURES) in self._done():
            return
        for n, chunk in enumerate(_chunks(self._units(_UNITS_WITH_EXPOSURES, experiment))):
            self._update_exposures(experiment, chunk, token=f"backfill/{experiment}/exposures/{n}")
        self._mark_done(experiment, [_EXPOSURES])

    # -- exposures -------------------------------------------------------------------------------
    def _update_exposures(
        self, experiment: str, units: Sequence[str], *, token: str, multi: set[str] | None = None
    ) -> None:
        params = {"experiment": experiment, "units": list(units)}
        multi = self._multi(experiment, units) if multi is None else multi
        new = {r[0]: (*r[1:], r[0] in multi) for r in self._client.query(_EXPOSURES_NEW, parameters=params).result_rows}
        old = {r[0]: tuple(r[1:]) for r in self._client.query(_EXPOSURES_OLD, parameters=params).result_rows}
        changed = {unit: state for unit, state in new.items() if old.get(unit) != state}
        if not changed:
            return
        deltas = _Deltas(2)
        for unit, (variant, revision, first_ts, exposures, is_multi) in changed.items():
            deltas.add((revision, variant, _minute(first_ts)), (1, exposures), +1, multi=is_multi)
            if (before := old.get(unit)) is not None:
                deltas.add((before[1], before[0], _minute(before[2])), (1, before[3]), -1, multi=before[4])
        updated = self._clock()
        states = [[experiment, unit, *state, updated] for unit, state in changed.items()]
        self._insert_deltas("exposure", deltas, experiment, _EXPOSURE_STATS, token=token)
        self._insert("exposure_units", states, _EXPOSURE_UNITS, token=f"{token}/units")

    # -- events attributed to no experiment -----------------------------------------------------
    def _update_unattributed(self, ids: Sequence[str], *, token: str) -> None:
        params = {"ids": list(ids)}
        new = {r[0]: tuple(r[1:]) for r in self._client.query(_UNATTRIBUTED_NEW, parameters=params).result_rows}
        old = {r[0]: tuple(r[1:]) for r in self._client.query(_UNATTRIBUTED_OLD, parameters=params).result_rows}
        changed = {event: state for event, state in new.items() if old.get(event) != state}
        if not changed:
            return
        deltas: dict[tuple[str, str], int] = defaultdict(int)
        for event, state in changed.items():
            deltas[state] += 1
            if (before := old.get(event)) is not None:
                deltas[before] -= 1
        stats = [[reason, name, n] for (reason, name), n in deltas.items() if n]
        updated = self._clock()
        states = [[event, reason, name, updated] for event, (reason, name) in changed.items()]
        self._insert("unattributed_stats", stats, ["reason", "name", "events"], token=f"{token}/stats")
        self._insert("unattributed_states", states, ["event_id", "reason", "name", "updated"], token=f"{token}/units")

    # -- metrics ---------------------------------------------------------------------------------
    def _compiled(self, experiment: str) -> list[CompiledMetric]:
        """The built-in metric and the experiment's own (latest revision), each computed over all units."""
        block = self._definitions().get(experiment, ExperimentMetrics())
        specs = [spec for _, spec in block.in_order()]
        metrics = [_BUILTIN, *(compile_metric(spec, f"m{i}") for i, spec in enumerate(specs))]
        self._backfill(experiment, metrics)
        return metrics

    def _definitions(self) -> dict[str, ExperimentMetrics]:
        if self._metrics is None:
            rows = self._client.query(_DEFINITIONS).result_rows
            self._metrics = {}
            for key, text in rows:
                try:
                    self._metrics[key] = ExperimentMetrics.from_json(text)
                except ValueError as exc:  # a record the sink cannot read: no metrics for it, said loudly
                    log.error("sink: experiment %s: its metrics cannot be read, none are computed: %s", key, exc)
        return self._metrics

    def _backfill(self, experiment: str, metrics: Sequence[CompiledMetric]) -> None:
        """Compute metric versions first met over every unit of the experiment, once."""
        missing = [m for m in metrics if (experiment, m.key, m.version) not in self._done()]
        if not missing:
            return
        units = self._units(_UNITS_WITH_CONVERSIONS, experiment)
        versions = hashlib.blake2b("/".join(f"{m.key}:{m.version}" for m in missing).encode(), digest_size=8)
        log.info("sink: computing %s of %s over %d units", [m.key for m in missing], experiment, len(units))
        for n, chunk in enumerate(_chunks(units)):
            self._update_metrics(experiment, chunk, missing, token=f"backfill/{experiment}/{versions.hexdigest()}/{n}")
        self._mark_done(experiment, [(m.key, m.version) for m in missing])

    def _update_metrics(
        self,
        experiment: str,
        units: Sequence[str],
        metrics: Sequence[CompiledMetric],
        *,
        token: str,
        multi: set[str] | None = None,
    ) -> None:
        sql, extra = metric_sql(metrics)
        params = {"experiment": experiment, "units": list(units), **extra}
        multi = self._multi(experiment, units) if multi is None else multi
        new = {}
        for unit, variant, minute, *values in self._client.query(sql, parameters=params).result_rows:
            for i, metric in enumerate(metrics):
                state = (variant, minute, values[2 * i], values[2 * i + 1], unit in multi)
                new[(unit, metric.key, metric.version)] = state
        wanted = {(m.key, m.version) for m in metrics}
        old = {
            (unit, metric, version): (variant, minute, x, y, was_multi)
            for unit, metric, version, variant, minute, x, y, was_multi in self._client.query(
                _METRICS_OLD, parameters={"experiment": experiment, "units": list(units)}
            ).result_rows
            if (metric, version) in wanted
        }
        for key, (variant, minute, *_) in old.items():  # nothing counts any more (a corrected first exposure)
            new.setdefault(key, (variant, minute, 0.0, 0.0, key[0] in multi))
        changed = {key: state for key, state in new.items() if _changed(old.get(key), state)}
        if not changed:
            return
        deltas = _Deltas(6)
        for (unit, name, version), state in changed.items():
            deltas.add((name, version, *state[:2]), _moments(state), +1, multi=state[4])
            if (before := old.get((unit, name, version))) is not None:
                deltas.add((name, version, *before[:2]), _moments(before), -1, multi=before[4])
        updated = self._clock()
        states = [
            [experiment, unit, metric, version, *state, updated] for (unit, metric, version), state in changed.items()
        ]
        self._insert_deltas("metric", deltas, experiment, _METRIC_STATS, token=token)
        self._insert("metric_units", states, _METRIC_UNITS, token=f"{token}/units")

    def _insert_deltas(self, kind: str, deltas: _Deltas, experiment: str, columns: list[str], *, token: str) -> None:
        """The differences into ``{kind}_stats``, then the multi-variant units' into ``multi_{kind}_stats``."""
        self._insert(f"{kind}_stats", deltas.rows(experiment, multi=False), columns, token=f"{token}/stats")
        self._insert(f"multi_{kind}_stats", deltas.rows(experiment, multi=True), columns, token=f"{token}/multi")

    def _insert(self, table: str, rows: list[list[Any]], columns: list[str], *, token: str) -> None:
        if rows:
            settings = {**_INSERT, "insert_deduplication_token": token}
            self._client.insert(table, rows, column_names=columns, settings=settings)


def _minute(ts: Any) -> Any:
    return ts.replace(second=0, microsecond=0)


def _changed(before: tuple[Any, ...] | None, after: tuple[Any, ...]) -> bool:
    """Whether a unit's metric state moved (a zero state stored nowhere equals no state)."""
    if before is None:
        return after[2] != 0 or after[3] != 0
    same_place = before[:2] == after[:2] and before[4] == after[4]
    return not (same_place and _same(before[2], after[2]) and _same(before[3], after[3]))


def _moments(state: tuple[Any, ...]) -> tuple[float, ...]:
    """What a unit's metric state adds to its cell: nonzero, x, x², y, y², xy."""
    x, y = state[2], state[3]
    return float(x != 0), x, x * x, y, y * y, x * y


class _Deltas:
    """Differences per statistics cell, for all units and for the multi-variant ones alone."""

    def __init__(self, width: int) -> None:
        self._width = width
        self._cells: dict[bool, dict[tuple[Any, ...], list[float]]] = {False: {}, True: {}}

    def add(self, cell: tuple[Any, ...], values: Sequence[float], sign: int, *, multi: bool) -> None:
        for table in (False, True) if multi else (False,):
            sums = self._cells[table].setdefault(cell, [0] * self._width)
            for i, value in enumerate(values):
                sums[i] += sign * value

    def rows(self, experiment: str, *, multi: bool) -> list[list[Any]]:
        """Rows for the statistics table (the multi-variant one with ``multi``); the first sum is a count."""
        return [[experiment, *cell, int(sums[0]), *sums[1:]] for cell, sums in self._cells[multi].items() if any(sums)]
