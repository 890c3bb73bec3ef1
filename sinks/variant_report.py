"""The report's per-variant rows from the aggregates: what the ``experiment_report`` view computes, without its scans.

The view (migrations 0004-0008) reads the detail tables with FINAL, so its cost grows with the units;
this module gives the same rows, column for column, from ``exposure_stats``, the built-in metric
``_conversions`` in ``metric_stats``, the definitions, and the flags (their distinct event ids, a small
set). Under the ``exclude`` policy the multi-variant units' share (``multi_exposure_stats``,
``multi_metric_stats``) is taken out. The statistics
are the view's, in Python (``sinks.stats``: Wald interval, delta-method lift, pooled z-test, chi-square
SRM stratified by revision); ``tests/integration/test_sink.py`` checks both agree on the same store.

    rows = variant_rows(client, "moon_mars", policy="exclude")   # [{experiment, variant, units, ...}, ...]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sinks.aggregates import BUILTIN_METRIC
from sinks.settings import MultiVariantPolicy
from sinks.stats import Z95, chi2_sf

__all__ = ["SRM_ALPHA", "variant_rows"]

SRM_ALPHA = 0.001
# Shared parts, spliced in by _sql: /*one*/ selects the experiment (all when ''), /*multi*/ its multi-variant units.
_ONE = "({experiment:String} = '' OR experiment = {experiment:String})"
_MULTI = """(
    SELECT experiment, unit_id FROM variant_switches WHERE reason = 'multiple_variants' AND /*one*/
)"""


def _sql(template: str) -> str:
    return template.replace("/*multi*/", _MULTI).replace("/*one*/", _ONE).replace("/*builtin*/", BUILTIN_METRIC)


_DEFINITIONS = """
SELECT key, revision, argMax(variant_names, published_ts), argMax(variant_weights, published_ts),
       argMax(fallback_variant, published_ts)
FROM experiment_definitions WHERE ({experiment:String} = '' OR key = {experiment:String})
GROUP BY key, revision
"""
_UNITS = _sql("""
SELECT experiment, revision, variant, sum(units), sum(exposures) FROM exposure_stats WHERE /*one*/
GROUP BY experiment, revision, variant HAVING sum(units) != 0 OR sum(exposures) != 0
""")
_UNITS_MULTI = _sql("""
SELECT experiment, revision, variant, sum(units) FROM multi_exposure_stats WHERE /*one*/
GROUP BY experiment, revision, variant
""")
_CONVERSIONS = _sql("""
SELECT experiment, variant, sum(nonzero), sum(sum_x), sum(sum_y) FROM metric_stats
WHERE metric = '/*builtin*/' AND /*one*/ GROUP BY experiment, variant
""")
_CONVERSIONS_MULTI = _CONVERSIONS.replace("metric_stats", "multi_metric_stats")
_FLAGS = _sql("""
SELECT experiment, reason, uniqExact(event_id) FROM assignment_flags WHERE /*one*/ GROUP BY experiment, reason
""")
_MISMATCHES = _sql("""
SELECT experiment, uniqExact(event_id) FROM assignment_flags WHERE reason != 'multiple_variants' AND /*one*/
GROUP BY experiment
""")
_MULTI_UNITS = _sql("SELECT experiment, uniqExact(unit_id) FROM /*multi*/ GROUP BY experiment")


@dataclass
class _Experiment:
    """What the queries found for one experiment."""

    revisions: dict[int, dict[str, int]] = field(default_factory=dict)  # revision -> variant -> weight (ordered)
    fallbacks: dict[int, str] = field(default_factory=dict)  # revision -> fallback variant
    units: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))  # (revision, variant)
    exposures: int = 0
    exposed_units: int = 0
    max_revision: int | None = None
    conversions: dict[str, list[float]] = field(default_factory=dict)  # variant -> converting, events, late
    flags: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0
    multi_variant_units: int = 0

    @property
    def latest(self) -> dict[str, int]:
        return self.revisions[max(self.revisions)] if self.revisions else {}

    @property
    def fallback(self) -> str | None:
        return self.fallbacks[max(self.fallbacks)] if self.fallbacks else None


def _rows(client: Any, sql: str, experiment: str) -> list[Sequence[Any]]:
    return list(client.query(sql, parameters={"experiment": experiment}).result_rows)


def _gather(client: Any, experiment: str, policy: MultiVariantPolicy) -> dict[str, _Experiment]:
    found: dict[str, _Experiment] = defaultdict(_Experiment)
    for key, revision, names, weights, fallback in _rows(client, _DEFINITIONS, experiment):
        found[key].revisions[int(revision)] = dict(zip(names, (int(w) for w in weights), strict=True))
        found[key].fallbacks[int(revision)] = fallback
    for key, revision, variant, units, exposures in _rows(client, _UNITS, experiment):
        e = found[key]
        e.units[(int(revision), variant)] += int(units)
        e.exposures += int(exposures)
        e.exposed_units += int(units)
        if int(units) > 0:
            e.max_revision = max(int(revision), e.max_revision or int(revision))
    for key, variant, nonzero, events, late in _rows(client, _CONVERSIONS, experiment):
        found[key].conversions[variant] = [float(nonzero), float(events), float(late)]
    if policy == "exclude":
        for key, revision, variant, units in _rows(client, _UNITS_MULTI, experiment):
            found[key].units[(int(revision), variant)] -= int(units)
        for key, variant, *values in _rows(client, _CONVERSIONS_MULTI, experiment):
            cell = found[key].conversions.setdefault(variant, [0.0, 0.0, 0.0])
            found[key].conversions[variant] = [a - float(b) for a, b in zip(cell, values, strict=True)]
    for key, reason, events in _rows(client, _FLAGS, experiment):
        found[key].flags[reason] = int(events)
    for key, events in _rows(client, _MISMATCHES, experiment):
        found[key].mismatches = int(events)
    for key, units in _rows(client, _MULTI_UNITS, experiment):
        found[key].multi_variant_units = int(units)
    return found


def variant_rows(client: Any, experiment: str | None, *, policy: MultiVariantPolicy) -> list[dict[str, Any]]:
    """One row per (experiment, variant), with the experiment's health on each, as the view gives them."""
    rows: list[dict[str, Any]] = []
    for key, e in sorted(_gather(client, experiment or "", policy).items()):
        if not e.revisions and not any(e.units.values()) and not e.exposures:
            continue
        rows += _experiment_rows(key, e, policy)
    return rows


def _experiment_rows(key: str, e: _Experiment, policy: MultiVariantPolicy) -> list[dict[str, Any]]:
    per_variant: dict[str, int] = defaultdict(int)
    for (_, variant), units in e.units.items():
        per_variant[variant] += units
    latest = e.latest
    names = sorted({*(v for v, n in per_variant.items() if n > 0), *latest})
    control = e.fallback if e.fallback in names else (min(names) if names else None)
    srm = _srm(e)
    health = _health(e, policy, control, srm)
    total_weight = sum(latest.values())
    control_counts = (per_variant.get(control or "", 0), _converting(e, control))
    out = []
    for variant in sorted(names, key=lambda name: (name != control, name)):
        units, converting = per_variant.get(variant, 0), _converting(e, variant)
        cells = e.conversions.get(variant, [0.0, 0.0, 0.0])
        expected = srm["expected"].get(variant)
        share = (expected or 0.0) / srm["units"] if srm["units"] > 0 else None
        if share is None and total_weight > 0 and variant in latest:
            share = latest[variant] / total_weight
        out.append({
            "experiment": key, "variant": variant, **health, "is_control": variant == control,
            "defined": variant in latest, "weight": latest.get(variant, 0), "expected_share": share,
            "units": units, "converting_units": converting, "conversions": round(cells[1]),
            "late_conversions": round(cells[2]),
            **_rate(units, converting, control_counts, is_control=variant == control),
        })  # fmt: skip
    return out


def _converting(e: _Experiment, variant: str | None) -> int:
    return round(e.conversions.get(variant or "", [0.0])[0])


def _health(e: _Experiment, policy: MultiVariantPolicy, control: str | None, srm: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "policy": policy, "revision": max(e.revisions) if e.revisions else e.max_revision, "control": control,
        "srm_chi2": srm["chi2"], "srm_dof": srm["dof"], "srm_p": srm["p"],
        "srm_flag": None if srm["p"] is None else srm["p"] < SRM_ALPHA, "exposures": e.exposures,
        "exposed_units": e.exposed_units, "mismatches": e.mismatches,
        "mismatch_rate": e.mismatches / e.exposures if e.exposures else None,
        "multi_variant_units": e.multi_variant_units,
        "multi_variant_rate": e.multi_variant_units / e.exposed_units if e.exposed_units else None,
        "flags_by_reason": dict(e.flags),
    }  # fmt: skip


def _srm(e: _Experiment) -> dict[str, Any]:
    """Chi-square of the units per (revision, variant) against each revision's weights (the view's 0008)."""
    stray = any(n > 0 and e.revisions.get(r, {}).get(v, 1) <= 0 for (r, v), n in e.units.items() if r in e.revisions)
    chi2, cells, strata, units = 0.0, 0, 0, 0
    expected: dict[str, float] = defaultdict(float)
    for revision, weights in e.revisions.items():
        observed = {v: n for (r, v), n in e.units.items() if r == revision and weights.get(v, 0) > 0 and n > 0}
        total = sum(observed.values())
        if total <= 0:
            continue
        strata, units = strata + 1, units + total
        for variant, weight in weights.items():
            if weight > 0:
                share = total * weight / sum(weights.values())
                chi2 += (observed.get(variant, 0) - share) ** 2 / share
                cells, expected[variant] = cells + 1, expected[variant] + share
    dof = cells - strata
    p = 0.0 if stray else (None if dof < 1 or not cells else chi2_sf(chi2, dof))
    if not cells:
        return {"chi2": None, "dof": None, "p": p, "units": units, "expected": expected}
    return {"chi2": chi2, "dof": dof, "p": p, "units": units, "expected": expected}


def _rate(units: int, converting: int, control: tuple[int, int], *, is_control: bool) -> dict[str, Any]:
    """The view's rate, its clipped 95% Wald interval, the delta-method lift and the pooled z-test."""
    none = dict.fromkeys(("lift", "lift_ci_low", "lift_ci_high", "p_value"))
    if units <= 0:
        return {"rate": None, "ci_half_width": None, "ci_low": None, "ci_high": None, **none}
    rate = converting / units
    half = Z95 * math.sqrt(rate * (1 - rate) / units)
    out = {"rate": rate, "ci_half_width": half, "ci_low": max(0.0, rate - half), "ci_high": min(1.0, rate + half)}
    n_c, x_c = control
    if is_control or n_c <= 0:
        return out | none
    p_c = x_c / n_c
    pooled = (converting + x_c) / (units + n_c)
    se = math.sqrt(pooled * (1 - pooled) * (1 / units + 1 / n_c))
    out["p_value"] = math.erfc(abs(rate - p_c) / se / math.sqrt(2)) if se > 0 else 1.0
    if p_c <= 0:
        return out | {"lift": None, "lift_ci_low": None, "lift_ci_high": None}
    lift = rate / p_c - 1
    lift_se = math.sqrt(rate * (1 - rate) / units / p_c**2 + rate**2 * p_c * (1 - p_c) / n_c / p_c**4)
    return out | {"lift": lift, "lift_ci_low": lift - Z95 * lift_se, "lift_ci_high": lift + Z95 * lift_se}
