"""An experiment's metrics, from the aggregates alone: per variant the estimate and its interval, the lift.

Reads ``exposure_stats`` and ``metric_stats`` (migration 0010; a few rows per variant and minute,
whatever the number of units) and, under the ``exclude`` policy, the multi-variant units' share of
them (``multi_exposure_stats``, ``multi_metric_stats``: migration 0011), to take them out. A metric
with a percentile cap reads its units' values once to find the cap.
The statistics are :mod:`sinks.metric_stats`'; p-values are corrected across metrics x variants when
the experiment asks for it, and a guardrail that moved significantly in its bad direction is flagged.

JSON shape of one metric (``report["experiments"][KEY]["metrics"]``, primary metrics first)::

    {"key", "version", "title", "role", "type", "direction", "cap", "window_ms", "has_data",
     "variants": {NAME: {"units", "nonzero_units", "numerator", "denominator", "value", "ci_low", "ci_high",
                         "is_control", "lift": null | {"absolute", "absolute_ci_low", "absolute_ci_high",
                         "relative", "relative_ci_low", "relative_ci_high", "p_value", "p_value_adjusted"}}},
     "guardrail_failed": bool}

``value`` is the rate (proportion), the mean per unit (mean) or sum(numerator) / sum(denominator)
(ratio); ``numerator`` and ``denominator`` are those sums (the denominator of a mean is its units).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.metrics import ExperimentMetrics, MetricSpec, Role
from sinks.aggregates import BUILTIN_METRIC
from sinks.metric_stats import Comparison, Estimate, Moments, adjust_p_values, compare, mean_estimate, ratio_estimate
from sinks.metric_stats import worse as is_worse
from sinks.settings import MultiVariantPolicy

__all__ = ["conversion_counts", "metric_results", "unit_counts"]

_UNITS = "SELECT variant, sum(units) FROM exposure_stats WHERE experiment = {experiment:String} GROUP BY variant"
_UNITS_MULTI = _UNITS.replace("exposure_stats", "multi_exposure_stats")
_SUMS = """
SELECT metric, version, variant, sum(nonzero), sum(sum_x), sum(sum_x2), sum(sum_y), sum(sum_y2), sum(sum_xy)
FROM metric_stats WHERE experiment = {experiment:String} GROUP BY metric, version, variant
"""
_SUMS_MULTI = _SUMS.replace("metric_stats", "multi_metric_stats")
_CAP = """
SELECT quantileExact({p:Float64})(x) FROM metric_units FINAL
WHERE experiment = {experiment:String} AND metric = {metric:String} AND version = {version:String} AND x != 0
"""
_CAPPED = """
SELECT variant, countIf(x != 0), sum(least(x, {cap:Float64})), sum(pow(least(x, {cap:Float64}), 2)),
       sum(y), sum(y * y), sum(least(x, {cap:Float64}) * y)
FROM metric_units FINAL
WHERE experiment = {experiment:String} AND metric = {metric:String} AND version = {version:String}
  AND ({exclude:Bool} = false OR NOT multi)
GROUP BY variant
"""

Sums = tuple[float, float, float, float, float, float]  # nonzero, sum_x, sum_x2, sum_y, sum_y2, sum_xy


def _rows(client: Any, sql: str, **params: Any) -> list[Sequence[Any]]:
    return list(client.query(sql, parameters=params).result_rows)


def unit_counts(client: Any, experiment: str, policy: MultiVariantPolicy) -> dict[str, int]:
    """Units per variant (the variant of each unit's earliest first exposure), without multi-variant ones
    under ``exclude``."""
    counts = {variant: int(n) for variant, n in _rows(client, _UNITS, experiment=experiment)}
    if policy == "exclude":
        for variant, n in _rows(client, _UNITS_MULTI, experiment=experiment):
            counts[variant] = counts.get(variant, 0) - int(n)
    return {variant: n for variant, n in counts.items() if n > 0}


def _sums(client: Any, experiment: str, policy: MultiVariantPolicy) -> dict[tuple[str, str], dict[str, Sums]]:
    """(metric, version) -> variant -> sums, without the multi-variant units under ``exclude``."""
    out: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(dict)
    for metric, version, variant, *values in _rows(client, _SUMS, experiment=experiment):
        out[(metric, version)][variant] = [float(v) for v in values]
    if policy == "exclude":
        for metric, version, variant, *values in _rows(client, _SUMS_MULTI, experiment=experiment):
            cell = out[(metric, version)].setdefault(variant, [0.0] * 6)
            out[(metric, version)][variant] = [a - float(b) for a, b in zip(cell, values, strict=True)]
    return {key: {v: tuple(s) for v, s in cells.items()} for key, cells in out.items()}  # type: ignore[misc]


def conversion_counts(client: Any, experiment: str, policy: MultiVariantPolicy) -> dict[str, dict[str, int]]:
    """Per variant: converting units, conversions and late conversions (the built-in metric)."""
    cells = _sums(client, experiment, policy).get((BUILTIN_METRIC, "1"), {})
    return {
        variant: {"converting_units": round(s[0]), "conversions": round(s[1]), "late_conversions": round(s[3])}
        for variant, s in cells.items()
    }


def metric_results(
    client: Any, experiment: str, metrics: ExperimentMetrics, *, control: str, policy: MultiVariantPolicy
) -> list[dict[str, Any]]:
    """Every metric the experiment names, primary first, with its estimates and lifts against ``control``."""
    units = unit_counts(client, experiment, policy)
    sums = _sums(client, experiment, policy)
    results = []
    for role, spec in metrics.in_order():
        cells = sums.get((spec.key, spec.version), {})
        if spec.cap is not None and spec.cap.percentile is not None:
            cells = _percentile_capped(client, experiment, spec, policy)
        results.append(_metric(role, spec, units, cells, control))
    _adjust(results, metrics)
    return results


def _percentile_capped(client: Any, experiment: str, spec: MetricSpec, policy: MultiVariantPolicy) -> dict[str, Sums]:
    """Sums with each unit's numerator capped at the percentile of the non-zero values (zeros set no cap)."""
    assert spec.cap is not None and spec.cap.percentile is not None
    where = {"experiment": experiment, "metric": spec.key, "version": spec.version}
    cap = _rows(client, _CAP, p=spec.cap.percentile, **where)[0][0]
    if cap is None or cap != cap:  # no unit has a value: nothing to cap (NaN from an empty quantile)
        return {}
    rows = _rows(client, _CAPPED, cap=float(cap), exclude=policy == "exclude", **where)
    return {variant: tuple(float(v) for v in values) for variant, *values in rows}  # type: ignore[misc]


def _estimate(spec: MetricSpec, n: int, s: Sums) -> Estimate | None:
    moments = Moments(n=n, sum_x=s[1], sum_x2=s[2], sum_y=s[3], sum_y2=s[4], sum_xy=s[5])
    if spec.type == "ratio":
        return ratio_estimate(moments)
    if spec.type == "proportion" and not 0 <= s[1] <= n:
        return None  # more converted units than units: a moment between two tables' batches, no estimate yet
    return mean_estimate(moments, proportion=spec.type == "proportion")


def _metric(
    role: Role, spec: MetricSpec, units: Mapping[str, int], cells: Mapping[str, Sums], control: str
) -> dict[str, Any]:
    variants: dict[str, dict[str, Any]] = {}
    estimates: dict[str, Estimate | None] = {}
    for variant in sorted(set(units) | set(cells), key=lambda v: (v != control, v)):
        n, s = units.get(variant, 0), cells.get(variant, (0.0,) * 6)
        estimates[variant] = _estimate(spec, n, s) if n > 0 else None
        variants[variant] = _variant(spec, n, s, estimates[variant], variant == control)
    base = estimates.get(control)
    for variant, entry in variants.items():
        mine = estimates[variant]
        if variant != control and mine is not None and base is not None:
            entry["lift"] = _lift(compare(mine, base))
    return {
        "key": spec.key, "version": spec.version, "title": spec.title, "role": role, "type": spec.type,
        "direction": spec.direction,
        "cap": None if spec.cap is None else spec.cap.model_dump(exclude_none=True), "window_ms": spec.window_ms,
        "aggregation": spec.numerator.aggregation, "events": spec.numerator.events,
        "has_data": any(s[0] or s[1] or s[3] for s in cells.values()), "variants": variants, "guardrail_failed": False,
    }  # fmt: skip


def _variant(spec: MetricSpec, n: int, s: Sums, estimate: Estimate | None, is_control: bool) -> dict[str, Any]:
    interval = None if estimate is None else estimate.ci()
    low, high = (None, None) if interval is None else (interval.low, interval.high)
    if spec.type == "proportion" and interval is not None:
        low, high = max(0.0, interval.low), min(1.0, interval.high)
    return {
        "units": n, "nonzero_units": round(s[0]), "numerator": s[1],
        "denominator": s[3] if spec.type == "ratio" else n,
        "value": None if estimate is None else estimate.value, "ci_low": low, "ci_high": high,
        "ci_half_width": None if interval is None else interval.half_width,
        "is_control": is_control, "lift": None,
    }  # fmt: skip


def _lift(c: Comparison) -> dict[str, Any]:
    a, r = c.absolute, c.relative
    return {
        "absolute": None if a is None else a.estimate, "absolute_ci_low": None if a is None else a.low,
        "absolute_ci_high": None if a is None else a.high, "relative": None if r is None else r.estimate,
        "relative_ci_low": None if r is None else r.low, "relative_ci_high": None if r is None else r.high,
        "p_value": c.p_value, "p_value_adjusted": c.p_value, "_comparison": c,
    }  # fmt: skip


def _adjust(results: list[dict[str, Any]], metrics: ExperimentMetrics) -> None:
    """Correct the p-values across metrics x variants, then flag the guardrails that got worse."""
    lifts = [v["lift"] for m in results for v in m["variants"].values() if v["lift"] is not None]
    adjusted = adjust_p_values([lift["p_value"] for lift in lifts], metrics.correction)
    for lift, p in zip(lifts, adjusted, strict=True):
        lift["p_value_adjusted"] = p
    for metric in results:
        for entry in metric["variants"].values():
            lift = entry["lift"]
            if lift is None:
                continue
            comparison: Comparison = lift.pop("_comparison")
            if metric["role"] == "guardrail" and is_worse(
                comparison._replace(p_value=lift["p_value_adjusted"]), metric["direction"]
            ):
                metric["guardrail_failed"] = True
