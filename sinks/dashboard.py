"""What the dashboard shows: the report, its time series, health badges, and the HTML pages around them.

The sink's API serves it (``sinks.server``), from the process that owns the store; the browser polls
``/api/dashboard/{experiment}`` and redraws (``sinks/static/dashboard.js``). Two series per variant,
as dense cumulative arrays over time buckets aligned to the epoch, at most ``MAX_POINTS`` of them:

- exposed units, every first exposure as logged (no policy): the unit states behind ``variant_minutes``
  merged cumulatively, so a unit whose first exposure was corrected (two rows, two minutes) counts once;
- units and converting units as the report counts them, from ``experiment_timeline`` (migration 0006),
  with the report's rate and 95% interval at every bucket; the last bucket equals the report.

    data = DashboardData(client)
    body = data.experiment("moon_mars", "exclude")   # {"report", "badges", "series", ...}
"""

from __future__ import annotations

import html
import json
import math
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

from abstream.errors import ReportError
from sinks.report import SRM_ALPHA, fetch_report
from sinks.settings import MultiVariantPolicy
from sinks.stats import wald_interval

__all__ = [
    "MAX_POINTS",
    "DashboardData",
    "DashboardSource",
    "choose_step",
    "health_badges",
    "render_page",
    "shape_series",
    "static_asset",
]

MAX_POINTS = 240
_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
# Rules of thumb for the badges (a rate at or above the second number is red); SRM uses the report's alpha.
MISMATCH_RED = 0.01
LATE_RED = 0.05
MULTI_VARIANT_RED = 0.01

_SPAN_SQL = """
SELECT count(), min(toUnixTimestamp(minute)), max(toUnixTimestamp(minute))
FROM variant_minute_stats WHERE experiment = {experiment:String}
"""
_EXPOSED_SQL = """
SELECT variant, bucket,
       uniqExactMerge(units) OVER (PARTITION BY variant ORDER BY bucket ROWS UNBOUNDED PRECEDING) AS cumulative
FROM (
    SELECT variant, intDiv(toUnixTimestamp(minute) - {start:Int64}, {step:Int64}) AS bucket,
           uniqExactMergeState(exposed_units) AS units
    FROM variant_minute_stats WHERE experiment = {experiment:String}
    GROUP BY variant, bucket
)
"""
_COUNTED_SQL = """
SELECT variant, intDiv(toUnixTimestamp(minute) - {start:Int64}, {step:Int64}) AS bucket,
       sum(units), sum(converting_units)
FROM experiment_timeline(policy = {policy:String}) WHERE experiment = {experiment:String}
GROUP BY variant, bucket
"""


class DashboardSource(Protocol):
    """What the server needs: the index and one experiment's page data (ReportError when it has none)."""

    def index(self, policy: MultiVariantPolicy) -> dict[str, Any]: ...

    def experiment(self, key: str, policy: MultiVariantPolicy) -> dict[str, Any]: ...


class DashboardData:
    """Dashboard JSON from a ClickHouse client; answers are reused for ``ttl_s`` (many tabs poll)."""

    def __init__(self, client: Any, *, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._ttl, self._clock = client, ttl_s, clock
        self._lock = threading.Lock()  # one dashboard query at a time, whoever polls
        self._cache: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}

    def index(self, policy: MultiVariantPolicy) -> dict[str, Any]:
        return self._cached(("index", policy), lambda: self._index(policy))

    def experiment(self, key: str, policy: MultiVariantPolicy) -> dict[str, Any]:
        return self._cached(("experiment", key, policy), lambda: self._experiment(key, policy))

    def _cached(self, key: tuple[str, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
            value = compute()
            self._cache[key] = (self._clock() + self._ttl, value)
            return value

    def _index(self, policy: MultiVariantPolicy) -> dict[str, Any]:
        report = fetch_report(self._client, None, policy=policy)
        rows = [_summary(key, entry) for key, entry in report["experiments"].items()]
        return {
            "policy": policy, "generated_at": _now(), "experiments": rows,
            "unattributed_events": report["unattributed_events"],
        }  # fmt: skip

    def _experiment(self, key: str, policy: MultiVariantPolicy) -> dict[str, Any]:
        entry = fetch_report(self._client, key, policy=policy)["experiments"][key]
        series = self._series(key, policy, list(entry["variants"]))
        return {
            "experiment": key,
            "policy": policy,
            "generated_at": _now(),
            "report": entry,
            "badges": health_badges(entry),
            "series": series,
        }

    def _series(self, key: str, policy: MultiVariantPolicy, variants: list[str]) -> dict[str, Any]:
        count, first, last = self._rows(_SPAN_SQL, {"experiment": key})[0]
        if not count:
            return shape_series(0, 60, 0, variants, [], [])
        end = int(last) + 60
        start, step = choose_step(int(first), end)
        params = {"experiment": key, "policy": policy, "start": start, "step": step}
        exposed, counted = self._rows(_EXPOSED_SQL, params), self._rows(_COUNTED_SQL, params)
        return shape_series(start, step, math.ceil((end - start) / step), variants, exposed, counted)

    def _rows(self, sql: str, parameters: dict[str, Any]) -> list[Any]:
        try:
            return list(self._client.query(sql, parameters=parameters).result_rows)
        except Exception as exc:
            if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_FUNCTION" in str(exc):
                raise ReportError(
                    "the dashboard's views are missing from this ClickHouse database: run `abstream sink migrate`"
                ) from exc
            raise ReportError(f"the dashboard query failed: {str(exc).splitlines()[0][:300]}") from exc


def choose_step(first_s: int, end_s: int) -> tuple[int, int]:
    """(start, step) in seconds: the smallest usual step that covers [first_s, end_s) in ``MAX_POINTS``
    buckets, and a start aligned to it, so buckets stay put while an experiment grows."""
    span_min = max(1, math.ceil((end_s - first_s) / 60))
    step_min = next((s for s in _STEPS_MIN if math.ceil(span_min / s) < MAX_POINTS), 0)
    if not step_min:
        step_min = 1440 * math.ceil(span_min / 1440 / (MAX_POINTS - 1))
    step = step_min * 60
    return first_s - first_s % step, step


def shape_series(
    start_s: int,
    step_s: int,
    buckets: int,
    variants: Sequence[str],
    exposed: Iterable[Sequence[Any]],
    counted: Iterable[Sequence[Any]],
) -> dict[str, Any]:
    """Dense cumulative arrays per variant, one value per bucket (its end is when the value held).

    ``exposed`` rows are (variant, bucket, distinct exposed units up to and including the bucket);
    ``counted`` rows are (variant, bucket, units added, converting units added). Variants are
    ``variants`` first (the report's order), then any others by name. A row outside the buckets
    (data that arrived between the queries) is folded into the nearest end.
    """
    exposed, counted = list(exposed), list(counted)
    if buckets <= 0 and (exposed or counted):
        raise ValueError("shape_series: rows need at least one bucket")
    names = list(dict.fromkeys([*variants, *sorted({str(row[0]) for row in [*exposed, *counted]})]))
    seen = {name: [0] * buckets for name in names}
    added = {name: {"units": [0] * buckets, "converting_units": [0] * buckets} for name in names}
    for name, bucket, units in exposed:
        at = min(max(0, int(bucket)), buckets - 1)
        seen[name][at] = max(seen[name][at], int(units))
    for name, bucket, units, converting in counted:
        at = min(max(0, int(bucket)), buckets - 1)
        added[name]["units"][at] += int(units)
        added[name]["converting_units"][at] += int(converting)
    out = {name: {"exposed_units": _running_max(seen[name]), **_cumulative(added[name])} for name in names}
    return {"start_ms": start_s * 1000, "step_ms": step_s * 1000, "buckets": buckets, "variants": out}


def _cumulative(columns: Mapping[str, list[int]]) -> dict[str, list[Any]]:
    series: dict[str, list[Any]] = {name: _running_sum(values) for name, values in columns.items()}
    bands = [_rate_ci(c, u) for c, u in zip(series["converting_units"], series["units"], strict=True)]
    series["rate"], series["ci_low"], series["ci_high"] = ([band[i] for band in bands] for i in range(3))
    return series


def _running_max(values: Iterable[int]) -> list[int]:
    """A cumulative count carried through the buckets where it has no row."""
    top, out = 0, []
    for value in values:
        top = max(top, value)
        out.append(top)
    return out


def _running_sum(values: Iterable[int]) -> list[int]:
    total, out = 0, []
    for value in values:
        total += value
        out.append(total)
    return out


def _rate_ci(converting: int, units: int) -> tuple[float | None, float | None, float | None]:
    """The report's rate and clipped 95% Wald interval; None without units."""
    if units <= 0:
        return None, None, None
    rate = wald_interval(converting, units)
    return rate.estimate, rate.low, rate.high


def health_badges(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SRM, mismatches, late conversions, multi-variant units: level ok / warn / bad, or na without data.

    Each badge has a ``text`` for the experiment's page and a ``short`` one for the index.
    """
    conversions = sum(v["conversions"] for v in entry["variants"].values())
    policy_note = "excluded" if entry["policy"] == "exclude" else "counted in their first variant"
    return [
        _srm_badge(entry["srm_p"]),
        _rate_badge("mismatches", "Mismatched exposures", entry["mismatches"], entry["exposures"], "exposures",
                    red=MISMATCH_RED),
        _rate_badge("late", "Late conversions", entry["late_conversions"], conversions, "conversions", red=LATE_RED),
        _rate_badge("multi_variant", "Multi-variant units", entry["multi_variant_units"], entry["exposed_units"],
                    "units", red=MULTI_VARIANT_RED, note=policy_note),
    ]  # fmt: skip


def _srm_badge(p: float | None) -> dict[str, Any]:
    badge = {"name": "srm", "label": "SRM"}
    if p is None:
        return {**badge, "level": "na", "text": "n/a (needs 2+ weighted variants with units)", "short": "n/a"}
    if p < SRM_ALPHA:
        return {
            **badge,
            "level": "bad",
            "text": f"p={p:.3g} < {SRM_ALPHA}: sample ratio mismatch",
            "short": f"p={p:.3g}",
        }
    return {**badge, "level": "ok", "text": f"p={p:.3g}", "short": f"p={p:.3g}"}


def _rate_badge(
    name: str, label: str, count: int, total: int | None, of: str, *, red: float, note: str = ""
) -> dict[str, Any]:
    """ok at zero, red at ``red`` or more of ``total``, amber between; na when there is nothing to count."""
    suffix = f", {note}" if note else ""
    if not total:
        level = "bad" if count else "na"
        return {"name": name, "label": label, "level": level, "text": f"{count} (no {of}){suffix}", "short": str(count)}
    rate = count / total
    level = "ok" if count == 0 else "bad" if rate >= red else "warn"
    text = f"{count} of {total} {of} ({rate * 100:.2f}%){suffix}"
    return {"name": name, "label": label, "level": level, "text": text, "short": f"{rate * 100:.2f}%"}


def _summary(key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the index: totals and the badges."""
    variants = entry["variants"]
    return {
        "experiment": key,
        "revision": entry["revision"],
        "control": entry["control"],
        "variants": list(variants),
        "units": sum(v["units"] for v in variants.values()),
        "converting_units": sum(v["converting_units"] for v in variants.values()),
        "badges": health_badges(entry),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def render_page(*, experiment: str | None, policy: MultiVariantPolicy) -> str:
    """The page shell (index when ``experiment`` is None); the script fills it from the JSON API.

    The key is HTML-escaped in the title and heading, and JSON-escaped inside the page's config block
    (``<``, ``>`` and ``&`` as \\u escapes, so no value can close the script element).
    """
    title = f"{experiment} · abstream" if experiment else "Experiments · abstream"
    root = "../" if experiment else "./"  # relative, so the pages work behind a proxy's path prefix too
    config = {"experiment": experiment, "policy": policy, "root": root}
    template = string.Template(static_asset("dashboard.html").decode())
    return template.substitute(
        title=html.escape(title),
        heading=html.escape(experiment or "Experiments"),
        root=root,
        config=_script_json(config),
    )


def _script_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def static_asset(name: str) -> bytes:
    """A file of ``sinks/static`` (package data, so installed wheels have it too)."""
    return resources.files("sinks.static").joinpath(name).read_bytes()
