"""The experiment report, from the aggregates (``sinks.variant_report``, ``sinks.metric_report``), as JSON
and as text for a terminal. (The ``experiment_report`` view computes the same rows in SQL for analysts,
scanning the detail tables; the report does not use it.)

JSON shape (``abstream report --json`` and ``GET /api/report/{experiment}`` give the same)::

    {"experiments": {KEY: {"variants": {NAME: {"units", "conversions", "rate", "ci_low", "ci_high", ...}},
                           "srm_p", "mismatches", "multi_variant_units", ...}}}

``rate`` is converting units / units; ``conversions`` counts conversion events. The text form
follows the seed simulator's line ("Mars: 490 visits, 95 clicks, Conv=19.39 +- 3.57%").

The report reads ClickHouse directly, unless the embedded store is held by a running sink: then
it asks that sink's API (found through ``<data dir>/sink.json``).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from abstream.errors import ClickHouseLockedError, ReportError
from schemas.metrics import ExperimentMetrics
from sinks.endpoint import get_json, read_endpoint
from sinks.metric_report import metric_results
from sinks.settings import MultiVariantPolicy
from sinks.variant_report import SRM_ALPHA, variant_rows

__all__ = ["fetch_report", "load_report", "render_text"]

_VARIANT_KEYS = (
    "units", "converting_units", "conversions", "late_conversions", "rate", "ci_low", "ci_high", "ci_half_width",
    "lift", "lift_ci_low", "lift_ci_high", "p_value", "weight", "expected_share", "defined", "is_control",
)  # fmt: skip
_EXPERIMENT_KEYS = (
    "revision", "policy", "control", "srm_p", "srm_chi2", "srm_dof", "srm_flag", "exposures", "exposed_units",
    "mismatches", "mismatch_rate", "multi_variant_units", "multi_variant_rate", "flags_by_reason",
)  # fmt: skip
_BOOLEANS = frozenset({"defined", "is_control", "srm_flag"})


def fetch_report(
    client: Any, experiment: str | None, *, policy: MultiVariantPolicy, metric: str | None = None
) -> dict[str, Any]:
    """The report of ``experiment`` (every experiment when None) from a ClickHouse client.

    ``metric`` keeps only that metric of the experiment's (ReportError listing them when it has no such one).
    """
    try:
        rows = variant_rows(client, experiment, policy=policy)
        experiments = _experiments(rows)
        for key, entry in experiments.items():
            entry["metrics"] = _metrics(client, key, entry, policy, metric)
    except ReportError:
        raise
    except Exception as exc:
        raise ReportError(_explain(exc)) from exc
    if experiment and not rows:
        raise ReportError(
            f"no data for experiment {experiment!r}: no first exposure or definition has reached the sink"
        )
    if experiment:
        return {"experiments": experiments}
    return {"experiments": experiments, "unattributed_events": _unattributed(client)}


_METRICS_SQL = """
SELECT argMax(metrics, (revision, published_ts)) FROM experiment_definitions WHERE key = {experiment:String}
"""


def _metrics(
    client: Any, key: str, entry: Mapping[str, Any], policy: MultiVariantPolicy, only: str | None
) -> list[dict[str, Any]]:
    """The experiment's metrics (its latest revision's), from the aggregates; ``only`` selects one."""
    rows = client.query(_METRICS_SQL, parameters={"experiment": key}).result_rows
    block = ExperimentMetrics.from_json(rows[0][0] if rows else "")
    results = metric_results(client, key, block, control=entry["control"], policy=policy)
    if only is None:
        return results
    chosen = [m for m in results if m["key"] == only]
    if not chosen:
        known = ", ".join(m["key"] for m in results) or "none"
        raise ReportError(f"experiment {key!r} has no metric {only!r}; its metrics: {known}")
    return chosen


# Each event once, under its latest reason (sinks/aggregates.py keeps these counts; migration 0013).
_UNATTRIBUTED_SQL = "SELECT reason, sum(events) AS events FROM unattributed_stats GROUP BY reason HAVING events != 0"
UNATTRIBUTED_REASONS = ("never_exposed", "outside_window", "late")


def _unattributed(client: Any) -> dict[str, int]:
    """Events attributed to no experiment, by reason (every reason present, 0 when none)."""
    try:
        rows = client.query(_UNATTRIBUTED_SQL, parameters={}).named_results()
        counts = {row["reason"]: int(row["events"]) for row in rows}
    except Exception as exc:
        raise ReportError(_explain(exc)) from exc
    return {reason: counts.pop(reason, 0) for reason in UNATTRIBUTED_REASONS} | counts


def load_report(
    *,
    url: str,
    database: str,
    endpoint_file: Path,
    experiment: str | None,
    policy: MultiVariantPolicy,
    metric: str | None = None,
) -> dict[str, Any]:
    """Query the store directly, or through the running sink that holds the embedded store."""
    from sinks.clickhouse import connect

    try:
        client = connect(url, database=database, create_database=False)
    except ClickHouseLockedError as exc:
        endpoint = read_endpoint(endpoint_file)
        if endpoint is None or endpoint.pid != exc.pid:
            raise ReportError(f"{exc} No running sink API is recorded for that pid in {endpoint_file}.") from None
        path = "/api/report" + (f"/{urllib.parse.quote(experiment, safe='')}" if experiment else "")
        return dict(get_json(endpoint, path, {"policy": policy} | ({"metric": metric} if metric else {})))
    return fetch_report(client, experiment, policy=policy, metric=metric)


def _explain(exc: Exception) -> str:
    text = str(exc)
    if "UNKNOWN_TABLE" in text or "UNKNOWN_DATABASE" in text or "UNKNOWN_FUNCTION" in text:
        return "the analyst's views are missing from this ClickHouse database: run `abstream sink migrate`"
    return f"the report query failed: {text.splitlines()[0][:300]}"


def _experiments(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        entry = out.setdefault(row["experiment"], {"variants": {}, **{k: _clean(k, row[k]) for k in _EXPERIMENT_KEYS}})
        entry["variants"][row["variant"]] = {k: _clean(k, row[k]) for k in _VARIANT_KEYS}
    for entry in out.values():
        entry["late_conversions"] = sum(v["late_conversions"] for v in entry["variants"].values())
    return out


def _clean(key: str, value: Any) -> Any:
    """JSON-safe values: NaN and infinities become null, 0/1 flags become booleans, maps become dicts."""
    if key in _BOOLEANS:
        return None if value is None else bool(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return value


def render_text(report: Mapping[str, Any]) -> str:
    """The report for a terminal: one line per variant, then SRM and health lines per experiment."""
    blocks = [_render_experiment(key, entry) for key, entry in report["experiments"].items()]
    text = "\n\n".join(blocks) or "no experiments have data yet"
    if (unattributed := report.get("unattributed_events")) is not None:
        reasons = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in unattributed.items())
        text += f"\n\nEvents attributed to no experiment: {sum(unattributed.values())} ({reasons})"
    return text


def _render_experiment(key: str, e: Mapping[str, Any]) -> str:
    lines = [f"{key} (revision {e['revision']}, control {e['control']}, multi-variant units: {e['policy']})"]
    lines += [f"  {name}: {_render_variant(v)}" for name, v in e["variants"].items()]
    lines += [f"  {_render_srm(e)}", f"  {_render_health(e)}"]
    for metric in e.get("metrics", []):
        lines += _render_metric(metric)
    return "\n".join(lines)


def _describe(m: Mapping[str, Any]) -> str:
    events = "/".join(m["events"])
    what = {
        "proportion": f"units with a {events}",
        "mean": f"{'events' if m['aggregation'] == 'count' else 'value'} of {events} per unit",
        "ratio": f"{'value' if m['aggregation'] == 'sum' else 'count'} of {events} per denominator",
    }[m["type"]]
    cap = m["cap"] or {}
    capped = f", capped at {cap['value']:g}" if "value" in cap else ""
    capped = capped or (f", capped at the p{cap['percentile'] * 100:g} unit" if "percentile" in cap else "")
    bad = ", decrease is better" if m["direction"] == "decrease" else ""
    return f"{m['key']} [{m['role']}{bad}] {m['title']}: {m['type']}, {what}{capped}"


def _render_metric(m: Mapping[str, Any]) -> list[str]:
    head = f"  {_describe(m)}" + ("  GUARDRAIL FAILED: significantly worse" if m["guardrail_failed"] else "")
    if not m["has_data"]:
        units = ", ".join(f"{name}: {v['units']} units" for name, v in m["variants"].items())
        return [head, f"    no data yet ({units or 'no units'})"]
    return [head, *(f"    {name}: {_render_metric_variant(m, v)}" for name, v in m["variants"].items())]


def _render_metric_variant(m: Mapping[str, Any], v: Mapping[str, Any]) -> str:
    if m["type"] == "proportion":
        text = f"{v['units']} units, {v['nonzero_units']} converted, "
        text += "Conv=n/a" if v["value"] is None else f"Conv={v['value'] * 100:.2f} +- {v['ci_half_width'] * 100:.2f}%"
    else:
        label = "ratio" if m["type"] == "ratio" else "mean"
        text = f"{v['units']} units, {label} " + (
            "n/a" if v["value"] is None else f"{v['value']:.4g} [{v['ci_low']:.4g}, {v['ci_high']:.4g}]"
        )
    if v["is_control"]:
        return text + " (control)"
    lift = v["lift"]
    if lift is None:
        return text
    if lift["relative"] is not None:
        text += f", lift {lift['relative'] * 100:+.1f}% [{lift['relative_ci_low'] * 100:+.1f}%, "
        text += f"{lift['relative_ci_high'] * 100:+.1f}%]"
    elif lift["absolute"] is not None:
        text += f", diff {lift['absolute']:+.4g} [{lift['absolute_ci_low']:+.4g}, {lift['absolute_ci_high']:+.4g}]"
    if lift["p_value"] is not None:
        text += f", p={lift['p_value']:.4g}"
        if not math.isclose(lift["p_value_adjusted"], lift["p_value"], rel_tol=1e-9):  # the correction moved it
            text += f" (adjusted {lift['p_value_adjusted']:.4g})"
    return text


def _render_variant(v: Mapping[str, Any]) -> str:
    text = f"{v['units']} units, {v['converting_units']} converted ({v['conversions']} conversions), "
    if v["rate"] is None:
        text += "Conv=n/a"
    else:
        text += f"Conv={v['rate'] * 100:.2f} +- {v['ci_half_width'] * 100:.2f}%"
    if v["is_control"]:
        return text + " (control)"
    if v["lift"] is not None:
        text += f", lift {v['lift'] * 100:+.1f}% [{v['lift_ci_low'] * 100:+.1f}%, {v['lift_ci_high'] * 100:+.1f}%]"
    if v["p_value"] is not None:
        text += f", p={v['p_value']:.4g}"
    return text


def _render_srm(e: Mapping[str, Any]) -> str:
    if e["srm_p"] is None:
        return "SRM: n/a (needs a definition with 2+ weighted variants and some units)"
    verdict = f"< {SRM_ALPHA} SAMPLE RATIO MISMATCH: check assignment and logging" if e["srm_flag"] else "ok"
    chi2 = f", chi2={e['srm_chi2']:.2f} with {e['srm_dof']} dof" if e["srm_chi2"] is not None else ""
    return f"SRM: p={e['srm_p']:.4g}{chi2} {verdict}"


def _render_health(e: Mapping[str, Any]) -> str:
    mismatch = f"{e['mismatches']} mismatched exposures ({_percent(e['mismatch_rate'])} of {e['exposures']})"
    multi = f"{e['multi_variant_units']} multi-variant units ({_percent(e['multi_variant_rate'])})"
    return f"Health: {mismatch}, {multi}, {e['late_conversions']} late conversions"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"
