"""What the dashboard shows: the report, its time series, health and guardrail badges, and the HTML pages.

The sink's API serves it (``sinks.server``), from the process that owns the store; the browser polls
``/api/dashboard/{experiment}`` and redraws (``sinks/static/dashboard.js``). The report (with its
``metrics``) is ``sinks.report``'s; the series, cumulative per variant and per metric over time buckets,
are ``sinks.series``' (from the aggregates only, so a refresh costs the same whatever the units).

    data = DashboardData(client)
    body = data.experiment("moon_mars", "exclude")   # {"report", "badges", "series", ...}
"""

from __future__ import annotations

import html
import json
import string
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

from sinks.metric_stats import Comparison, worse
from sinks.report import SRM_ALPHA, fetch_report
from sinks.series import fetch_series
from sinks.settings import MultiVariantPolicy
from sinks.stats import Interval

__all__ = [
    "DashboardData",
    "DashboardSource",
    "guardrail_badges",
    "health_badges",
    "render_page",
    "static_asset",
]

# Rules of thumb for the badges (a rate at or above the second number is red); SRM uses the report's alpha.
MISMATCH_RED = 0.01
LATE_RED = 0.05
MULTI_VARIANT_RED = 0.01


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
        series = fetch_series(self._client, key, policy, list(entry["variants"]), entry["metrics"])
        return {
            "experiment": key,
            "policy": policy,
            "generated_at": _now(),
            "report": entry,
            "badges": [*health_badges(entry), *guardrail_badges(entry)],
            "series": series,
        }


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


def guardrail_badges(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One badge per guardrail metric: bad when the report flags it, ok when tested, na before a test."""
    return [_guardrail_badge(m) for m in entry.get("metrics", []) if m["role"] == "guardrail"]


def _guardrail_badge(metric: Mapping[str, Any]) -> dict[str, Any]:
    badge = {"name": f"guardrail:{metric['key']}", "label": f"Guardrail {metric['key']}"}
    better = "lower" if metric["direction"] == "decrease" else "higher"
    lifts = {
        name: v["lift"] for name, v in metric["variants"].items() if v["lift"] and v["lift"]["p_value"] is not None
    }
    if not metric["has_data"] or not lifts:
        why = "no data yet" if not metric["has_data"] else "no test yet (needs 2+ units with spread per variant)"
        return {**badge, "level": "na", "text": f"n/a ({why})", "short": "n/a"}
    p = min(lift["p_value_adjusted"] for lift in lifts.values())
    if metric["guardrail_failed"]:
        bad = {name: lift["p_value_adjusted"] for name, lift in lifts.items() if _worse(lift, metric["direction"])}
        names = ", ".join(f"{name} (p={q:.3g})" for name, q in bad.items())
        return {
            **badge,
            "level": "bad",
            "text": f"significantly worse in {names}; {better} is better",
            "short": "worse",
        }
    return {
        **badge,
        "level": "ok",
        "text": f"not significantly worse ({better} is better), min p={p:.3g}",
        "short": "ok",
    }


def _worse(lift: Mapping[str, Any], direction: Any) -> bool:
    """The report's guardrail rule (``metric_stats.worse`` on the adjusted p-value), for one treatment."""
    absolute = Interval(lift["absolute"], lift["absolute_ci_low"], lift["absolute_ci_high"])
    return worse(Comparison(absolute, None, lift["p_value_adjusted"], None), direction)


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
        "badges": [*health_badges(entry), *guardrail_badges(entry)],
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
