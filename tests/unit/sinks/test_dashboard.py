"""The dashboard's data: the experiment's body, health and guardrail badges, the index, caching."""

from __future__ import annotations

from typing import Any

import pytest

import sinks.report
from abstream.errors import ReportError
from sinks.dashboard import DashboardData, guardrail_badges, health_badges
from tests.unit.sinks.test_report import ROWS

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


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
        self.converting = [("_conversions", "1", "Moon", 0, 1, 1.0, 1.0, 0, 0, 0),
                           ("_conversions", "1", "Mars", 2, 2, 3.0, 5.0, 0, 0, 0)]  # fmt: skip

    def query(self, sql: str, parameters: dict[str, Any]) -> Any:
        self.queries += 1
        by_bucket = "AS bucket" in sql and "variant_switches" not in sql
        rows: list[Any] = (
            self.span if "HAVING sum(units)" in sql
            else self.exposed if by_bucket and "FROM exposure_stats" in sql
            else self.converting if by_bucket and "FROM metric_stats" in sql
            else []
        )  # fmt: skip
        named = [r for r in self.report_rows if parameters.get("experiment") in ("", None, r["experiment"])]
        if "unattributed_stats" in sql:
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


def test_a_store_without_the_aggregates_says_to_migrate() -> None:
    client = FakeClient(ROWS)

    def query(sql: str, parameters: dict[str, Any]) -> Any:
        if "HAVING sum(units)" in sql:
            raise RuntimeError("Code: 60. DB::Exception: Unknown table expression identifier 'exposure_stats'. "
                               "(UNKNOWN_TABLE)")  # fmt: skip
        return FakeClient.query(client, sql, parameters)

    client.query = query  # type: ignore[method-assign]

    with pytest.raises(ReportError, match=r"run `abstream sink migrate`"):
        DashboardData(client).experiment("moon_mars", "exclude")


def guardrail(key: str, *, failed: bool, has_data: bool = True, **lifts: Any) -> dict[str, Any]:
    """A guardrail entry as the report gives it: a control and treatments with their (absolute, adjusted p)."""
    variants: dict[str, Any] = {"Moon": {"lift": None}}
    for name, (absolute, p) in lifts.items():
        lift = {"absolute": absolute, "absolute_ci_low": absolute - 0.01, "absolute_ci_high": absolute + 0.01}
        variants[name] = {"lift": {**lift, "p_value": p / 2, "p_value_adjusted": p}}
    return {"key": key, "version": "v1", "type": "proportion", "cap": None, "role": "guardrail",
            "direction": "decrease", "has_data": has_data, "variants": variants,
            "guardrail_failed": failed}  # fmt: skip


def test_a_guardrail_that_got_worse_is_red_and_names_the_variant() -> None:
    metrics = [
        {**guardrail("clicked", failed=False), "role": "primary"},
        guardrail("bounce", failed=True, Mars=(0.04, 0.003), Venus=(-0.01, 0.2)),
        guardrail("errors", failed=False, Mars=(0.001, 0.5)),
        guardrail("refunds", failed=False, has_data=False),
    ]

    badges = {b["name"]: b for b in guardrail_badges({"metrics": metrics})}

    assert list(badges) == ["guardrail:bounce", "guardrail:errors", "guardrail:refunds"]
    bounce = badges["guardrail:bounce"]
    assert (bounce["level"], bounce["label"], bounce["short"]) == ("bad", "Guardrail bounce", "worse")
    assert bounce["text"] == "significantly worse in Mars (p=0.003); lower is better"
    assert badges["guardrail:errors"]["level"] == "ok" and "min p=0.5" in badges["guardrail:errors"]["text"]
    assert (badges["guardrail:refunds"]["level"], badges["guardrail:refunds"]["text"]) == ("na", "n/a (no data yet)")


def test_guardrail_badges_follow_the_health_badges_on_the_page_and_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    import sinks.report

    metrics = [guardrail("bounce", failed=True, Mars=(0.04, 0.003))]
    monkeypatch.setattr(sinks.report, "metric_results", lambda *_, **__: metrics)
    client = FakeClient(ROWS)

    body = DashboardData(client).experiment("moon_mars", "exclude")
    index = DashboardData(client).index("exclude")

    names = ["srm", "mismatches", "late", "multi_variant", "guardrail:bounce"]
    assert [b["name"] for b in body["badges"]] == names
    assert [b["name"] for b in index["experiments"][0]["badges"]] == names
    assert body["badges"][-1]["level"] == "bad"
    assert list(body["series"]["metrics"]["bounce"]["variants"]) == ["Moon", "Mars"]
