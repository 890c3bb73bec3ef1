"""The dashboard's series: time buckets, running sums, estimates per bucket that end at the report's numbers."""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from abstream.errors import ReportError
from schemas.metrics import ExperimentMetrics
from sinks.aggregates import BUILTIN_METRIC
from sinks.metric_report import conversion_counts, metric_results, unit_counts
from sinks.series import (
    MAX_POINTS,
    PERCENTILE_NOTE,
    choose_step,
    fetch_series,
    metric_band,
    running_sums,
    shape_metric_series,
    shape_series,
)

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
Z = stats.norm.ppf(0.975)


@pytest.mark.parametrize(
    ("span_minutes", "step_minutes"),
    [(1, 1), (10, 1), (120, 1), (239, 1), (240, 2), (300, 2), (24 * 60, 10), (30 * 1440, 360), (365 * 1440, 2880)],
)
def test_the_step_is_the_smallest_usual_one_that_fits(span_minutes: int, step_minutes: int) -> None:
    start, step = choose_step(T0, T0 + span_minutes * 60)

    assert step == step_minutes * 60
    assert start == T0  # midnight is aligned to every step


@given(first=st.integers(0, 4_000_000_000), span=st.integers(0, 5_000_000_000 // 60))
def test_buckets_cover_the_span_within_the_limit_and_stay_aligned(first: int, span: int) -> None:
    end = first + 60 + span * 60
    start, step = choose_step(first, end)

    assert start % step == 0 and start <= first < start + step
    assert math.ceil((end - start) / step) <= MAX_POINTS


# -- pure shaping ------------------------------------------------------------------------------------
@given(st.lists(st.tuples(st.sampled_from("AB"), st.integers(-3, 12), st.integers(-5, 50)), max_size=40))
def test_running_sums_are_dense_end_at_the_totals_and_fold_strays_in(rows: list[tuple[str, int, int]]) -> None:
    sums = running_sums(rows, 10)

    for key, cells in sums.items():
        assert len(cells) == 10
        assert cells[-1] == [sum(n for k, _, n in rows if k == key)]
        for b in range(10):
            assert cells[b] == [sum(n for k, at, n in rows if k == key and min(max(at, 0), 9) <= b)]


def test_series_are_dense_and_cumulative_in_the_reports_order() -> None:
    exposed = [("Moon", 0, 2), ("Moon", 3, 1), ("Mars", 1, 4), ("Stray", 2, 1)]
    counted = [*exposed, ("Mars", 1, -1)]  # a multi-variant unit leaves the bucket of its first exposure
    converting = [("Moon", 0, 1), ("Mars", 1, 0), ("Mars", 3, 2)]

    series = shape_series(T0, 60, 4, ["Moon", "Mars"], exposed, counted, converting)

    assert (series["start_ms"], series["step_ms"], series["buckets"]) == (T0 * 1000, 60_000, 4)
    assert list(series["variants"]) == ["Moon", "Mars", "Stray"]
    moon, mars, stray = (series["variants"][name] for name in ("Moon", "Mars", "Stray"))
    assert moon["exposed_units"] == [2, 2, 2, 3] and mars["exposed_units"] == [0, 4, 4, 4]
    assert stray["exposed_units"] == [0, 0, 1, 1] and stray["rate"] == [None, None, 0.0, 0.0]
    assert moon["units"] == [2, 2, 2, 3] and moon["converting_units"] == [1, 1, 1, 1]
    assert mars["units"] == [0, 3, 3, 3] and mars["converting_units"] == [0, 0, 0, 2]
    assert mars["rate"] == [None, 0.0, 0.0, pytest.approx(2 / 3)]
    assert moon["rate"][0] == 0.5 and moon["rate"][3] == pytest.approx(1 / 3)


def test_the_rate_band_is_the_95_percent_wald_interval_clipped_to_0_1() -> None:
    series = shape_series(T0, 60, 3, ["A"], [], [("A", 0, 40), ("A", 2, 1)], [("A", 0, 7), ("A", 2, 34)])
    a = series["variants"]["A"]

    for rate, low, high, n, x in zip(a["rate"], a["ci_low"], a["ci_high"], [40, 40, 41], [7, 7, 41], strict=True):
        half = Z * math.sqrt(x / n * (1 - x / n) / n)
        assert rate == pytest.approx(x / n)
        assert (low, high) == (pytest.approx(max(0.0, x / n - half)), pytest.approx(min(1.0, x / n + half)))
    assert a["ci_high"][2] == 1.0 and a["ci_low"][2] == 1.0


def test_no_data_gives_empty_series_for_each_variant() -> None:
    series = shape_series(T0, 60, 0, ["Moon", "Mars"], [], [], [])

    assert series["buckets"] == 0
    assert series["variants"]["Moon"] == {k: [] for k in ("exposed_units", "units", "converting_units", "rate",
                                                         "ci_low", "ci_high")}  # fmt: skip
    with pytest.raises(ValueError, match="at least one bucket"):
        shape_series(T0, 60, 0, ["Moon"], [("Moon", 0, 1)], [], [])


@pytest.mark.parametrize("kind", ["proportion", "mean", "ratio"])
def test_each_bucket_is_the_estimate_over_the_units_first_exposed_by_then(kind: str) -> None:
    rnd = random.Random(kind)
    units = [(rnd.randrange(6), *unit_value(rnd, kind)) for _ in range(300)]  # (bucket, x, y)
    rows = [(("m", "v1", "A"), b, float(x != 0), x, x * x, y, y * y, x * y) for b, x, y in units]
    n = [sum(1 for b, *_ in units if b <= at) for at in range(6)]
    metric = {"key": "m", "version": "v1", "type": kind, "cap": None, "variants": {"A": {}}}

    series = shape_metric_series(6, [metric], {"A": n}, rows)["m"]["variants"]["A"]

    for at in range(6):
        xs = np.array([x for b, x, _ in units if b <= at])
        ys = np.array([y for b, _, y in units if b <= at])
        if kind == "ratio":
            value = xs.sum() / ys.sum()
            gradient = np.array([1 / ys.mean(), -xs.mean() / ys.mean() ** 2])
            half = Z * math.sqrt(gradient @ np.cov(xs, ys) @ gradient / len(xs))
        else:
            value = xs.mean()
            spread = value * (1 - value) if kind == "proportion" else xs.var(ddof=1)
            half = Z * math.sqrt(spread / len(xs))
        low, high = value - half, value + half
        if kind == "proportion":
            low, high = max(0.0, low), min(1.0, high)
        assert (series["value"][at], series["ci_low"][at], series["ci_high"][at]) == pytest.approx((value, low, high))


def unit_value(rnd: random.Random, kind: str) -> tuple[float, float]:
    if kind == "proportion":
        return float(rnd.random() < 0.3), 0.0
    if kind == "mean":
        return (round(rnd.uniform(1, 50), 2) if rnd.random() < 0.4 else 0.0), 0.0
    orders = rnd.choice((0, 1, 1, 2, 3))
    return sum(round(rnd.uniform(5, 80), 2) for _ in range(orders)), float(orders)


def test_no_estimate_where_there_is_none_to_make() -> None:
    assert metric_band("mean", 1, (1, 3.0, 9.0, 0, 0, 0)) == (None, None, None)  # one unit
    assert metric_band("ratio", 10, (0, 0.0, 0.0, 0.0, 0.0, 0.0)) == (None, None, None)  # no denominator
    assert metric_band("proportion", 3, (4, 4.0, 4.0, 0, 0, 0)) == (None, None, None)  # conversions ahead of units
    assert metric_band("proportion", 4, (0, 0.0, 0.0, 0, 0, 0)) == (0.0, 0.0, 0.0)


def test_a_percentile_capped_metric_has_a_note_and_no_series() -> None:
    metric = {"key": "rev", "version": "v", "type": "mean", "cap": {"percentile": 0.99}, "variants": {"A": {}}}

    shaped = shape_metric_series(2, [metric], {"A": [5, 9]}, [(("rev", "v", "A"), 0, 1, 2.0, 4.0, 0, 0, 0)])

    assert shaped == {"rev": {"version": "v", "type": "mean", "note": PERCENTILE_NOTE, "variants": {}}}


# -- against the report, through a fake store ----------------------------------------------------------
METRICS = ExperimentMetrics.model_validate({
    "primary": ["clicked"], "secondary": ["clicks", "value_per_click"], "guardrails": ["bought"],
    "correction": "holm",
    "definitions": {
        "clicked": {"key": "clicked", "title": "Clicked", "type": "proportion", "numerator": {"events": ["click"]}},
        "clicks": {"key": "clicks", "title": "Clicks", "type": "mean", "numerator": {"events": ["click"]}},
        "value_per_click": {"key": "value_per_click", "title": "Value per click", "type": "ratio",
                            "numerator": {"events": ["click"], "aggregation": "sum"},
                            "denominator": {"events": ["click"]}},
        "bought": {"key": "bought", "title": "Bought", "type": "proportion", "numerator": {"events": ["buy"]}},
    },
})  # fmt: skip


@dataclass
class Unit:
    variant: str
    minute: int  # of its first exposure, in seconds
    multi: bool
    values: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (metric, version) -> x, y


class Store:
    """The aggregate tables of some units, answering the series' and the report's queries by their shape."""

    def __init__(self, units: list[Unit]) -> None:
        self.units, self.tables = units, set()

    def query(self, sql: str, parameters: dict[str, Any]) -> Any:
        self.tables |= set(re.findall(r"FROM (\w+)", sql))
        p, by_bucket = parameters, "bucket" in sql
        units = [u for u in self.units if u.multi] if "FROM multi_" in sql else self.units

        def at(u: Unit) -> tuple[int, ...]:
            return ((u.minute - p["start"]) // p["step"],) if by_bucket else ()

        if "HAVING sum(units)" in sql:
            minutes = [u.minute for u in self.units]
            rows = [(len(minutes), min(minutes, default=0), max(minutes, default=0))]
        elif "exposure_stats" in sql:
            rows = grouped(((u.variant, *at(u)), (1,)) for u in units)
        elif "metric_stats" in sql:
            rows = grouped(
                ((*metric, u.variant, *at(u)), (float(x != 0), x, x * x, y, y * y, x * y))
                for u in units for metric, (x, y) in u.values.items() if x or y
            )  # fmt: skip
        else:
            rows = []
        return type("Result", (), {"result_rows": rows})()


def grouped(items: Any) -> list[tuple[Any, ...]]:
    out: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for key, values in items:
        for i, v in enumerate(values):
            out[key][i] += v
        out[key][len(values) :] = []
    return [(*key, *values) for key, values in out.items()]


def store(seed: int = 1, units: int = 400) -> Store:
    rnd, specs = random.Random(seed), {spec.key: spec for _, spec in METRICS.in_order()}
    out = []
    for _ in range(units):
        unit = Unit(rnd.choice("AB"), T0 + 60 * rnd.randrange(90), rnd.random() < 0.05)
        clicks = [round(rnd.uniform(1, 50), 2) for _ in range(rnd.choice((0, 0, 0, 1, 2)) + (unit.variant == "B"))]
        unit.values[(BUILTIN_METRIC, "1")] = (float(len(clicks)), float(rnd.random() < 0.1 and bool(clicks)))
        events = [{"name": "click", "value": v, "properties": {}, "latency_ms": 0} for v in clicks]
        for key, spec in specs.items():
            unit.values[(key, spec.version)] = spec.unit_value(events)
        out.append(unit)
    return Store(out)


@pytest.mark.parametrize("policy", ["exclude", "first_seen"])
def test_the_last_bucket_is_the_report_and_every_bucket_counts_the_units_exposed_by_then(policy: Any) -> None:
    client = store()
    report = metric_results(client, "exp", METRICS, control="A", policy=policy)

    series = fetch_series(client, "exp", policy, ["A", "B"], report)

    assert series["buckets"] == 90 and series["step_ms"] == 60_000
    counted = [u for u in client.units if policy == "first_seen" or not u.multi]
    for name in "AB":
        variant = series["variants"][name]
        mine = [u for u in counted if u.variant == name]
        assert variant["exposed_units"][-1] == sum(u.variant == name for u in client.units)
        assert variant["units"][-1] == unit_counts(client, "exp", policy)[name] == len(mine)
        assert variant["converting_units"][-1] == conversion_counts(client, "exp", policy)[name]["converting_units"]
        for at in (0, 30, 89):
            assert variant["units"][at] == sum(u.minute < T0 + 60 * (at + 1) for u in mine)
    for metric in report:
        shown = series["metrics"][metric["key"]]
        assert (shown["version"], shown["type"], shown["note"]) == (metric["version"], metric["type"], None)
        assert list(shown["variants"]) == list(metric["variants"]) == ["A", "B"]
        for name, want in metric["variants"].items():
            got = shown["variants"][name]
            last = (got["value"][-1], got["ci_low"][-1], got["ci_high"][-1])
            assert last == pytest.approx((want["value"], want["ci_low"], want["ci_high"]), rel=1e-9, abs=1e-12)
    bought = series["metrics"]["bought"]["variants"]["B"]
    assert bought["value"][-1] == 0.0 and set(bought["value"]) <= {None, 0.0}  # no data: 0 from 2 units on


def test_a_store_without_data_gives_empty_series_per_metric() -> None:
    report = metric_results(Store([]), "exp", METRICS, control="A", policy="exclude")

    series = fetch_series(Store([]), "exp", "exclude", ["A"], report)

    assert series["buckets"] == 0 and series["variants"]["A"]["units"] == []
    assert series["metrics"]["clicked"] == {"version": METRICS.definitions["clicked"].version, "type": "proportion",
                                            "note": None, "variants": {}}  # fmt: skip


def test_the_series_read_only_the_aggregates() -> None:
    client = store(units=50)
    report = metric_results(client, "exp", METRICS, control="A", policy="exclude")
    client.tables = set()

    fetch_series(client, "exp", "exclude", ["A", "B"], report)

    # a few rows per variant and minute, whatever the units: no unit's state, no flag is read
    assert client.tables == {"exposure_stats", "metric_stats", "multi_exposure_stats", "multi_metric_stats"}


def failing(message: str) -> Callable[..., Any]:
    def query(sql: str, parameters: dict[str, Any]) -> Any:
        raise RuntimeError(message)

    return query


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("Code: 60. DB::Exception: Unknown table expression identifier 'exposure_stats'. (UNKNOWN_TABLE)",
         r"run `abstream sink migrate`"),
        ("Code: 241. DB::Exception: Memory limit exceeded\nstack", r"the dashboard query failed: .*Memory limit"),
    ],
)  # fmt: skip
def test_query_failures_are_report_errors_that_say_what_to_do(message: str, said: str) -> None:
    client = type("Client", (), {"query": staticmethod(failing(message))})()

    with pytest.raises(ReportError, match=said):
        fetch_series(client, "exp", "exclude", ["A"], [])


def test_rows_of_unknown_variants_or_metrics_are_left_out_of_the_metric_series() -> None:
    metric = {"key": "m", "version": "v", "type": "mean", "cap": None, "variants": {"A": {}}}
    rows: Sequence[Any] = [(("m", "v", "A"), 0, 1, 2.0, 4.0, 0, 0, 0), (("m", "v", "Z"), 0, 1, 5.0, 25.0, 0, 0, 0),
                           (("m", "old", "A"), 0, 1, 9.0, 81.0, 0, 0, 0)]  # fmt: skip

    shaped = shape_metric_series(1, [metric], {"A": [2]}, rows)["m"]["variants"]

    assert list(shaped) == ["A"] and shaped["A"]["value"] == [1.0]
