"""The dashboard's data: time buckets, cumulative series with the report's interval, health badges, caching."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import sinks.report
from abstream.errors import ReportError
from sinks.dashboard import MAX_POINTS, DashboardData, choose_step, health_badges, shape_series
from tests.unit.sinks.test_report import ROWS

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


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


def test_series_are_dense_and_cumulative_in_the_reports_order() -> None:
    exposed = [("Moon", 0, 2), ("Moon", 3, 3), ("Mars", 1, 4), ("Stray", 2, 1)]  # distinct units so far
    counted = [("Moon", 0, 2, 1), ("Moon", 3, 1, 0), ("Mars", 1, 3, 0), ("Mars", 3, 0, 2)]

    series = shape_series(T0, 60, 4, ["Moon", "Mars"], exposed, counted)

    assert (series["start_ms"], series["step_ms"], series["buckets"]) == (T0 * 1000, 60_000, 4)
    assert list(series["variants"]) == ["Moon", "Mars", "Stray"]
    moon, mars, stray = (series["variants"][name] for name in ("Moon", "Mars", "Stray"))
    assert moon["exposed_units"] == [2, 2, 2, 3] and mars["exposed_units"] == [0, 4, 4, 4]
    assert stray["exposed_units"] == [0, 0, 1, 1] and stray["rate"] == [None] * 4
    assert moon["units"] == [2, 2, 2, 3] and moon["converting_units"] == [1, 1, 1, 1]
    assert mars["converting_units"] == [0, 0, 0, 2]
    assert mars["rate"] == [None, 0.0, 0.0, pytest.approx(2 / 3)]
    assert moon["rate"][0] == 0.5 and moon["rate"][3] == pytest.approx(1 / 3)


def test_the_band_is_the_95_percent_wald_interval_clipped_to_0_1() -> None:
    rows = [("A", 0, 40, 7), ("A", 1, 0, 0), ("A", 2, 1, 34)]
    series = shape_series(T0, 60, 3, ["A"], [], rows)["variants"]["A"]

    z = stats.norm.ppf(0.975)
    for rate, low, high, n, x in zip(
        series["rate"], series["ci_low"], series["ci_high"], [40, 40, 41], [7, 7, 41], strict=True
    ):
        half = z * math.sqrt(x / n * (1 - x / n) / n)
        assert rate == pytest.approx(x / n)
        assert (low, high) == (pytest.approx(max(0.0, x / n - half)), pytest.approx(min(1.0, x / n + half)))
    assert series["ci_high"][2] == 1.0 and series["ci_low"][2] == 1.0


def test_rows_outside_the_buckets_are_kept_at_the_nearest_end() -> None:
    series = shape_series(T0, 60, 3, ["A"], [("A", -1, 2), ("A", 0, 1), ("A", 5, 3)], [("A", -2, 2, 1), ("A", 9, 1, 1)])

    a = series["variants"]["A"]
    assert series["buckets"] == 3
    assert a["exposed_units"] == [2, 2, 3] and a["units"] == [2, 2, 3] and a["converting_units"] == [1, 1, 2]


def test_no_data_gives_empty_series_for_each_variant() -> None:
    series = shape_series(T0, 60, 0, ["Moon", "Mars"], [], [])

    assert series["buckets"] == 0
    assert series["variants"]["Moon"] == {k: [] for k in ("exposed_units", "units", "converting_units", "rate",
                                                         "ci_low", "ci_high")}  # fmt: skip


@given(
    st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 30), st.integers(0, 50), st.integers(0, 50)), max_size=60)
)
def test_cumulative_series_end_at_the_totals_and_never_fall(rows: list[tuple[str, int, int, int]]) -> None:
    counted = [(v, b, u, min(u, c)) for v, b, u, c in rows]
    exposed = [(v, b, sum(u for w, a, u, _ in counted if w == v and a <= b)) for v, b in {(v, b) for v, b, *_ in rows}]

    series = shape_series(T0, 60, 31, [], exposed, counted)

    for name, values in series["variants"].items():
        units = sum(u for v, _, u, _ in counted if v == name)
        assert values["units"][-1] == values["exposed_units"][-1] == units
        assert values["converting_units"][-1] == sum(c for v, _, _, c in counted if v == name)
        for column in ("units", "exposed_units", "converting_units"):
            assert all(a <= b for a, b in zip(values[column], values[column][1:], strict=False))
        for rate, low, high in zip(values["rate"], values["ci_low"], values["ci_high"], strict=True):
            assert rate is None or 0.0 <= low <= rate <= high <= 1.0


def entry(**overrides: Any) -> dict[str, Any]:
    base = {
        "policy": "exclude", "srm_p": 0.52, "mismatches": 0, "exposures": 1000, "late_conversions": 0,
        "multi_variant_units": 0, "exposed_units": 800,
        "variants": {"Moon": {"conversions": 30}, "Mars": {"conversions": 50}},
    }  # fmt: skip
    return {**base, **overrides}


def levels(e: dict[str, Any]) -> dict[str, str]:
    return {badge["name"]: badge["level"] for badge in health_badges(e)}


def test_a_healthy_experiment_is_all_green() -> None:
    assert levels(entry()) == {"srm": "ok", "mismatches": "ok", "late": "ok", "multi_variant": "ok"}


@pytest.mark.parametrize(
    ("overrides", "name", "level"),
    [
        ({"srm_p": 0.000999}, "srm", "bad"),
        ({"srm_p": 0.001}, "srm", "ok"),
        ({"srm_p": None}, "srm", "na"),
        ({"mismatches": 9}, "mismatches", "warn"),
        ({"mismatches": 10}, "mismatches", "bad"),
        ({"late_conversions": 3}, "late", "warn"),
        ({"late_conversions": 4}, "late", "bad"),
        ({"variants": {"Moon": {"conversions": 0}}}, "late", "na"),
        ({"multi_variant_units": 7}, "multi_variant", "warn"),
        ({"multi_variant_units": 8}, "multi_variant", "bad"),
        ({"exposures": 0, "exposed_units": 0}, "mismatches", "na"),
    ],
)
def test_badges_turn_amber_then_red(overrides: dict[str, Any], name: str, level: str) -> None:
    assert levels(entry(**overrides))[name] == level


def test_badge_texts_say_how_many_of_what() -> None:
    badges = {
        b["name"]: b for b in health_badges(entry(mismatches=21, exposures=426, srm_p=0.0002, policy="first_seen"))
    }

    assert badges["mismatches"]["text"] == "21 of 426 exposures (4.93%)" and badges["mismatches"]["short"] == "4.93%"
    assert badges["srm"]["text"] == "p=0.0002 < 0.001: sample ratio mismatch"
    assert badges["multi_variant"]["text"] == "0 of 800 units (0.00%), counted in their first variant"


@pytest.fixture(autouse=True)
def _report_rows_from_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's rows come from the fake client (sinks.variant_report is tested on chDB)."""

    def rows(client: Any, experiment: str | None, *, policy: str) -> list[dict[str, Any]]:
        return [r for r in client.report_rows if experiment in (None, r["experiment"])]

    monkeypatch.setattr(sinks.report, "variant_rows", rows)


class FakeClient:
    """Answers the report query with ``tests.unit.sinks.test_report.ROWS`` and the series queries with rows."""

    def __init__(self, report_rows: list[dict[str, Any]]) -> None:
        self.report_rows, self.queries = report_rows, 0
        self.span: list[tuple[int, int, int]] = [(3, T0, T0 + 120)]
        self.exposed = [("Moon", 0, 5), ("Mars", 2, 4)]
        self.counted = [("Moon", 0, 5, 1), ("Mars", 2, 4, 2)]

    def query(self, sql: str, parameters: dict[str, Any]) -> Any:
        self.queries += 1
        rows: list[Any] = (
            self.span if "min(toUnixTimestamp(minute))" in sql
            else self.exposed if "uniqExactMergeState(exposed_units)" in sql
            else self.counted if "experiment_timeline" in sql
            else []
        )  # fmt: skip
        named = [r for r in self.report_rows if parameters.get("experiment") in ("", None, r["experiment"])]
        if "unattributed_event_counts" in sql:
            named = [{"reason": "never_exposed", "events": 7}]
        return type("Result", (), {"result_rows": rows, "named_results": lambda _self: iter(named)})()


def test_the_experiment_body_has_the_report_badges_and_series() -> None:
    client = FakeClient(ROWS)

    body = DashboardData(client).experiment("moon_mars", "exclude")

    assert body["experiment"] == "moon_mars" and body["policy"] == "exclude"
    assert list(body["report"]["variants"]) == ["Moon", "Mars"]
    assert [b["name"] for b in body["badges"]] == ["srm", "mismatches", "late", "multi_variant"]
    assert body["series"]["step_ms"] == 60_000 and body["series"]["buckets"] == 3
    assert body["series"]["variants"]["Mars"]["converting_units"] == [0, 0, 2]


def test_the_index_lists_experiments_with_totals() -> None:
    body = DashboardData(FakeClient(ROWS)).index("exclude")

    assert body["experiments"] == [
        {
            "experiment": "moon_mars", "revision": 3, "control": "Moon", "variants": ["Moon", "Mars"], "units": 1000,
            "converting_units": 146, "badges": health_badges(DashboardData(FakeClient(ROWS)).experiment(
                "moon_mars", "exclude")["report"]),
        }
    ]  # fmt: skip
    assert body["unattributed_events"] == {"never_exposed": 7, "outside_window": 0, "late": 0}


def test_an_experiment_without_data_is_a_report_error() -> None:
    with pytest.raises(ReportError, match="no data for experiment 'nope'"):
        DashboardData(FakeClient(ROWS)).experiment("nope", "exclude")


def test_answers_are_reused_for_the_ttl_then_recomputed() -> None:
    client, now = FakeClient(ROWS), [100.0]
    data = DashboardData(client, ttl_s=2.0, clock=lambda: now[0])

    first = data.experiment("moon_mars", "exclude")
    asked = client.queries
    assert data.experiment("moon_mars", "exclude") is first and client.queries == asked
    data.experiment("moon_mars", "first_seen")  # another policy is another answer
    assert client.queries > asked
    after = client.queries
    now[0] += 2.5
    assert data.experiment("moon_mars", "exclude") is not first and client.queries == after + asked


def test_a_store_without_the_timeline_view_says_to_migrate() -> None:
    client = FakeClient(ROWS)

    def query(sql: str, parameters: dict[str, Any]) -> Any:
        if "experiment_timeline" in sql:
            raise RuntimeError(
                "Code: 60. DB::Exception: Unknown table function experiment_timeline. (UNKNOWN_FUNCTION)"
            )
        return FakeClient.query(client, sql, parameters)

    client.query = query  # type: ignore[method-assign]

    with pytest.raises(ReportError, match=r"run `abstream sink migrate`"):
        DashboardData(client).experiment("moon_mars", "exclude")
