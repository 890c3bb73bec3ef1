"""The dashboard's time series, read from the sink's aggregates alone (migration 0010, ``docs/aggregates.md``).

Every series is cumulative over time buckets aligned to the epoch (at most ``MAX_POINTS``), by the bucket
of each unit's *first exposure*: a bucket's value is the report as it would read counting only the units
first exposed by the end of that bucket, with everything they did since. So the last bucket equals the
report, and a refresh reads a few rows per variant and bucket, whatever the number of units:
``exposure_stats`` (units), ``metric_stats`` (sums), and under ``exclude`` the multi-variant units' share
of them (``multi_exposure_stats`` / ``multi_metric_stats``), subtracted bucket by bucket.

Per variant (``series["variants"][NAME]``): ``exposed_units`` (every first exposure, no policy);
``units``, ``converting_units`` (the built-in metric's units with a conversion), ``rate``, ``ci_low``,
``ci_high`` (the report's clipped 95% Wald interval) under the policy. Per metric
(``series["metrics"][KEY]``): ``{"version", "type", "note", "variants": {NAME: {"value", "ci_low",
"ci_high"}}}`` with :mod:`sinks.metric_stats`' estimate and 95% interval, as the report computes them.
A metric capped at a percentile has no series (``variants`` empty, a ``note`` says why): its cap is a
percentile over all units at read time, so earlier buckets have no cap of their own to show.

    series = fetch_series(client, "moon_mars", "exclude", ["Moon", "Mars"], report_entry["metrics"])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from abstream.errors import ReportError
from sinks.aggregates import BUILTIN_METRIC
from sinks.metric_stats import Moments, mean_estimate, ratio_estimate
from sinks.settings import MultiVariantPolicy
from sinks.stats import wald_interval

__all__ = [
    "MAX_POINTS",
    "PERCENTILE_NOTE",
    "choose_step",
    "fetch_series",
    "metric_band",
    "running_sums",
    "shape_metric_series",
    "shape_series",
]

MAX_POINTS = 240
_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_BUILTIN = (BUILTIN_METRIC, "1")  # the built-in metric's only version (x = conversions per unit)
PERCENTILE_NOTE = (
    "no series: the cap is a percentile of all units, computed when the report runs; the numbers are capped"
)

_SPAN_SQL = """
SELECT count(), min(toUnixTimestamp(minute)), max(toUnixTimestamp(minute)) FROM (
    SELECT minute FROM exposure_stats WHERE experiment = {experiment:String}
    GROUP BY revision, variant, minute HAVING sum(units) != 0 OR sum(exposures) != 0
)
"""
_UNITS_SQL = """
SELECT variant, intDiv(toUnixTimestamp(minute) - {start:Int64}, {step:Int64}) AS bucket, sum(units)
FROM exposure_stats WHERE experiment = {experiment:String}
GROUP BY variant, bucket
"""
_UNITS_MULTI_SQL = _UNITS_SQL.replace("exposure_stats", "multi_exposure_stats")
_SUMS_SQL = """
SELECT metric, version, variant, intDiv(toUnixTimestamp(minute) - {start:Int64}, {step:Int64}) AS bucket,
       sum(nonzero), sum(sum_x), sum(sum_x2), sum(sum_y), sum(sum_y2), sum(sum_xy)
FROM metric_stats
WHERE experiment = {experiment:String} AND metric IN {metrics:Array(String)} AND version IN {versions:Array(String)}
GROUP BY metric, version, variant, bucket
"""
_SUMS_MULTI_SQL = _SUMS_SQL.replace("metric_stats", "multi_metric_stats")

Sums = Sequence[float]  # nonzero, sum_x, sum_x2, sum_y, sum_y2, sum_xy
Band = tuple[float | None, float | None, float | None]  # value, ci_low, ci_high


def choose_step(first_s: int, end_s: int) -> tuple[int, int]:
    """(start, step) in seconds: the smallest usual step that covers [first_s, end_s) in ``MAX_POINTS``
    buckets, and a start aligned to it, so buckets stay put while an experiment grows."""
    span_min = max(1, math.ceil((end_s - first_s) / 60))
    step_min = next((s for s in _STEPS_MIN if math.ceil(span_min / s) < MAX_POINTS), 0)
    if not step_min:
        step_min = 1440 * math.ceil(span_min / 1440 / (MAX_POINTS - 1))
    step = step_min * 60
    return first_s - first_s % step, step


def fetch_series(
    client: Any,
    experiment: str,
    policy: MultiVariantPolicy,
    variants: Sequence[str],
    metrics: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The experiment's series (``metrics``: the report's metric entries, each with ``key`` and ``version``)."""
    count, first, last = _rows(client, _SPAN_SQL, {"experiment": experiment})[0]
    if not count:
        return {**shape_series(0, 60, 0, variants, [], [], []), "metrics": shape_metric_series(0, metrics, {}, [])}
    end = int(last) + 60
    start, step = choose_step(int(first), end)
    buckets = math.ceil((end - start) / step)
    wanted = {_BUILTIN, *((m["key"], m["version"]) for m in metrics)}
    params = {
        "experiment": experiment, "start": start, "step": step,
        "metrics": sorted({k for k, _ in wanted}), "versions": sorted({v for _, v in wanted}),
    }  # fmt: skip
    exposed = _rows(client, _UNITS_SQL, params)
    sums = [((m, v, name), b, *s) for m, v, name, b, *s in _rows(client, _SUMS_SQL, params) if (m, v) in wanted]
    counted = list(exposed)
    if policy == "exclude":  # the multi-variant units leave the buckets of their first exposure
        counted += [(name, b, -n) for name, b, n in _rows(client, _UNITS_MULTI_SQL, params)]
        sums += [
            ((m, v, name), b, *(-x for x in s))
            for m, v, name, b, *s in _rows(client, _SUMS_MULTI_SQL, params)
            if (m, v) in wanted
        ]
    converting = [(key[2], b, s[0]) for key, b, *s in sums if key[:2] == _BUILTIN]
    series = shape_series(start, step, buckets, variants, exposed, counted, converting)
    units = {name: columns["units"] for name, columns in series["variants"].items()}
    return {**series, "metrics": shape_metric_series(buckets, metrics, units, sums)}


def _rows(client: Any, sql: str, parameters: Mapping[str, Any]) -> list[Any]:
    try:
        return list(client.query(sql, parameters=dict(parameters)).result_rows)
    except Exception as exc:
        if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_FUNCTION" in str(exc):
            raise ReportError(
                "the dashboard's tables are missing from this ClickHouse database: run `abstream sink migrate`"
            ) from exc
        raise ReportError(f"the dashboard query failed: {str(exc).splitlines()[0][:300]}") from exc


def running_sums(rows: Iterable[Sequence[Any]], buckets: int) -> dict[Hashable, list[list[float]]]:
    """Rows (key, bucket, *values) -> per key, the values' running sums at each bucket.

    A row outside the buckets (data that arrived between two queries) is folded into the nearest end.
    """
    dense: dict[Hashable, list[list[float]]] = {}
    for key, bucket, *values in rows:
        if buckets <= 0:
            raise ValueError("running_sums: rows need at least one bucket")
        cells = dense.setdefault(key, [[0] * len(values) for _ in range(buckets)])
        cell = cells[min(max(0, int(bucket)), buckets - 1)]
        for i, value in enumerate(values):
            cell[i] += value
    for cells in dense.values():
        for before, cell in itertools.pairwise(cells):
            for i, value in enumerate(before):
                cell[i] += value
    return dense


def shape_series(
    start_s: int,
    step_s: int,
    buckets: int,
    variants: Sequence[str],
    exposed: Iterable[Sequence[Any]],
    counted: Iterable[Sequence[Any]],
    converting: Iterable[Sequence[Any]],
) -> dict[str, Any]:
    """Dense cumulative arrays per variant, one value per bucket (its end is when the value held).

    Each row is (variant, bucket, units added): ``exposed`` every unit first exposed in the bucket,
    ``counted`` the units the policy counts, ``converting`` those of them with a conversion. Variants are
    ``variants`` first (the report's order), then any others by name.
    """
    columns = {"exposed_units": list(exposed), "units": list(counted), "converting_units": list(converting)}
    sums = {column: running_sums(rows, buckets) for column, rows in columns.items()}
    names = list(dict.fromkeys([*variants, *sorted({str(k) for by in sums.values() for k in by})]))
    zeros = [[0]] * buckets
    out = {}
    for name in names:
        series: dict[str, list[Any]] = {c: [round(s[0]) for s in sums[c].get(name, zeros)] for c in columns}
        bands = [_rate_band(c, n) for c, n in zip(series["converting_units"], series["units"], strict=True)]
        series["rate"], series["ci_low"], series["ci_high"] = ([band[i] for band in bands] for i in range(3))
        out[name] = series
    return {"start_ms": start_s * 1000, "step_ms": step_s * 1000, "buckets": buckets, "variants": out}


def _rate_band(converting: int, units: int) -> Band:
    """The report's rate and clipped 95% Wald interval; None without units."""
    if units <= 0:
        return None, None, None
    rate = wald_interval(min(converting, units), units)
    return rate.estimate, rate.low, rate.high


def shape_metric_series(
    buckets: int,
    metrics: Sequence[Mapping[str, Any]],
    units: Mapping[str, Sequence[int]],
    sums: Iterable[Sequence[Any]],
) -> dict[str, Any]:
    """Per metric and variant of the report, the estimate and its 95% interval at each bucket.

    ``units`` are the counted units per variant, cumulative (``shape_series``' ``units``); ``sums`` rows are
    ((metric, version, variant), bucket, nonzero, sum_x, sum_x2, sum_y, sum_y2, sum_xy) added in the bucket.
    """
    cumulative = running_sums(sums, buckets)
    zeros, out = [[0.0] * 6] * buckets, {}
    for metric in metrics:
        entry: dict[str, Any] = {"version": metric["version"], "type": metric["type"], "note": None, "variants": {}}
        out[metric["key"]] = entry
        if (metric.get("cap") or {}).get("percentile") is not None:
            entry["note"] = PERCENTILE_NOTE
            continue
        for name in metric["variants"]:
            key = (metric["key"], metric["version"], name)
            n = units.get(name, [0] * buckets)
            bands = [metric_band(metric["type"], int(k), s) for k, s in zip(n, cumulative.get(key, zeros), strict=True)]
            entry["variants"][name] = {field: [band[i] for band in bands] for i, field in enumerate(_BAND_FIELDS)}
    return out


_BAND_FIELDS = ("value", "ci_low", "ci_high")


def metric_band(kind: str, n: int, s: Sums) -> Band:
    """A metric's value and 95% interval from a variant's units and sums, as ``sinks.metric_report`` computes
    them (a proportion's interval clipped to [0, 1]); None where there is no estimate.

    A proportion with more units converting than units counted (conversions that reached the sink before
    their exposures) has no estimate until the exposures arrive.
    """
    moments = Moments(n=n, sum_x=s[1], sum_x2=s[2], sum_y=s[3], sum_y2=s[4], sum_xy=s[5])
    if kind == "proportion" and not 0 <= moments.sum_x <= n:
        return None, None, None
    estimate = ratio_estimate(moments) if kind == "ratio" else mean_estimate(moments, proportion=kind == "proportion")
    if estimate is None:
        return None, None, None
    interval = estimate.ci()
    if kind == "proportion":
        return estimate.value, max(0.0, interval.low), min(1.0, interval.high)
    return estimate.value, interval.low, interval.high
