"""The report: JSON from its rows, the text form, and the way to it through a running sink's API.

The rows come from a fake here (``sinks.variant_report`` is tested on chDB, against the view, in
tests/integration/test_sink.py); they have the view's shape.
"""

from __future__ import annotations

import json
import math
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sinks.clickhouse
import sinks.report
from abstream.errors import ClickHouseLockedError, ReportError
from sinks.endpoint import SinkEndpoint, get_json, read_endpoint, remove_endpoint, write_endpoint
from sinks.report import fetch_report, load_report, render_text
from sinks.server import ApiServer, build_app
from sinks.stats import relative_lift, two_proportion_p_value, wald_interval


def view_row(variant: str, units: int, converting: int, control: tuple[int, int] | None) -> dict[str, Any]:
    rate = wald_interval(converting, units)
    lift = relative_lift(converting, units, *control) if control else None
    return {
        "experiment": "moon_mars", "variant": variant, "policy": "exclude", "revision": 3, "control": "Moon",
        "is_control": int(control is None), "defined": 1, "weight": 1, "expected_share": 0.5, "units": units,
        "converting_units": converting, "conversions": converting + 2, "late_conversions": 1, "rate": rate.estimate,
        "ci_half_width": wald_interval(converting, units, clip=False).half_width, "ci_low": rate.low,
        "ci_high": rate.high, "lift": lift.estimate if lift else None, "lift_ci_low": lift.low if lift else None,
        "lift_ci_high": lift.high if lift else None,
        "p_value": two_proportion_p_value(converting, units, *control) if control else None,
        "srm_chi2": 0.4, "srm_dof": 1, "srm_p": 0.527, "srm_flag": 0, "exposures": 1200, "exposed_units": 1000,
        "mismatches": 3, "mismatch_rate": 3 / 1200, "multi_variant_units": 4, "multi_variant_rate": math.nan,
        "flags_by_reason": {"variant_mismatch": 3},
    }  # fmt: skip


class FakeClient:
    """The report view's rows, and the unattributed events' counts by reason."""

    def __init__(self, rows: list[dict[str, Any]], unattributed: dict[str, int] | None = None) -> None:
        self.rows = rows
        self.unattributed = [{"reason": r, "events": n} for r, n in (unattributed or {}).items()]
        self.parameters: dict[str, Any] = {}

    def query(self, sql: str, parameters: dict[str, Any]) -> Any:
        rows: list[dict[str, Any]] = []  # the metrics' aggregates: none in these tests
        if "unattributed_stats" in sql:
            rows = self.unattributed
        return type("Result", (), {"named_results": lambda _self: iter(rows), "result_rows": []})()


ROWS = [view_row("Moon", 510, 51, None), view_row("Mars", 490, 95, (51, 510))]


@pytest.fixture(autouse=True)
def _rows_from_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sinks.report.variant_rows

    def rows(client: Any, experiment: str | None, *, policy: str) -> list[dict[str, Any]]:
        if not isinstance(client, FakeClient):
            return real(client, experiment, policy=policy)  # type: ignore[arg-type]
        client.parameters = {"policy": policy, "experiment": experiment or ""}
        return [r for r in client.rows if experiment in (None, r["experiment"])]

    monkeypatch.setattr(sinks.report, "variant_rows", rows)


def test_json_has_the_demo_shape_with_clean_values() -> None:
    client = FakeClient(ROWS)

    body = fetch_report(client, "moon_mars", policy="first_seen")

    assert client.parameters == {"policy": "first_seen", "experiment": "moon_mars"}
    entry = body["experiments"]["moon_mars"]
    assert {"variants", "srm_p", "mismatches", "multi_variant_units"} <= set(entry)
    assert {"units", "conversions", "rate", "ci_low", "ci_high"} <= set(entry["variants"]["Mars"])
    assert entry["multi_variant_rate"] is None  # NaN is not JSON
    assert entry["srm_flag"] is False and entry["variants"]["Moon"]["is_control"] is True
    assert entry["late_conversions"] == 2
    json.dumps(body, allow_nan=False)


def test_an_unknown_experiment_is_a_report_error() -> None:
    with pytest.raises(ReportError, match="no data for experiment 'nope'"):
        fetch_report(FakeClient([]), "nope", policy="exclude")


def test_missing_views_point_at_the_migrate_command() -> None:
    class Broken:
        def query(self, *_: Any, **__: Any) -> Any:
            raise RuntimeError("Code: 60. DB::Exception: Unknown table expression identifier (UNKNOWN_TABLE)")

    with pytest.raises(ReportError, match="abstream sink migrate"):
        fetch_report(Broken(), None, policy="exclude")


def test_the_text_reads_like_the_seed_simulator_plus_lift_srm_and_health() -> None:
    text = render_text(fetch_report(FakeClient(ROWS), None, policy="exclude"))

    lines = text.splitlines()
    assert lines[0] == "moon_mars (revision 3, control Moon, multi-variant units: exclude)"
    assert lines[1] == "  Moon: 510 units, 51 converted (53 conversions), Conv=10.00 +- 2.60% (control)"
    assert lines[2].startswith("  Mars: 490 units, 95 converted (97 conversions), Conv=19.39 +- 3.50%, lift +93.9% [")
    assert "p=2.636e-05" in lines[2]
    assert lines[3] == "  SRM: p=0.527, chi2=0.40 with 1 dof ok"
    assert (
        lines[4] == "  Health: 3 mismatched exposures (0.25% of 1200), 4 multi-variant units (n/a), 2 late conversions"
    )


def test_the_whole_report_counts_events_attributed_to_no_experiment_by_reason() -> None:
    body = fetch_report(FakeClient(ROWS, {"late": 2, "never_exposed": 40}), None, policy="exclude")

    assert body["unattributed_events"] == {"never_exposed": 40, "outside_window": 0, "late": 2}
    assert render_text(body).splitlines()[-1] == (
        "Events attributed to no experiment: 42 (never exposed 40, outside window 0, late 2)"
    )
    assert "unattributed_events" not in fetch_report(FakeClient(ROWS), "moon_mars", policy="exclude")


def test_a_flagged_srm_says_so() -> None:
    rows = [{**row, "srm_p": 0.0002, "srm_flag": 1} for row in ROWS]

    assert "SAMPLE RATIO MISMATCH" in render_text(fetch_report(FakeClient(rows), None, policy="exclude"))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[SinkEndpoint, Path]]:
    def report(experiment: str | None, policy: str, metric: str | None) -> dict[str, Any]:
        if experiment == "nope":
            raise ReportError("no data for experiment 'nope'")
        if metric == "nope":
            raise ReportError(f"experiment {experiment!r} has no metric 'nope'; its metrics: revenue")
        return {"experiments": {experiment or "all": {"policy": policy, "metric": metric}}}

    server = ApiServer(build_app(report=report, health=lambda: {"idle": True}), host="127.0.0.1", port=0)
    endpoint = SinkEndpoint(os.getpid(), "127.0.0.1", server.start(), "chdb:///x", "abstream")
    write_endpoint(tmp_path / "sink.json", endpoint)
    try:
        yield endpoint, tmp_path / "sink.json"
    finally:
        server.stop()


def test_the_api_serves_reports_health_and_errors(api: tuple[SinkEndpoint, Path]) -> None:
    endpoint, _ = api

    assert get_json(endpoint, "/api/report/moon_mars", {}) == {
        "experiments": {"moon_mars": {"policy": "exclude", "metric": None}}
    }
    assert get_json(endpoint, "/api/report", {"policy": "first_seen"}) == {
        "experiments": {"all": {"policy": "first_seen", "metric": None}}
    }
    assert get_json(endpoint, "/api/report/x", {"metric": "revenue"})["experiments"]["x"]["metric"] == "revenue"
    with pytest.raises(ReportError, match="has no metric 'nope'; its metrics: revenue"):
        get_json(endpoint, "/api/report/x", {"metric": "nope"})
    with urllib.request.urlopen(f"{endpoint.base_url}/healthz", timeout=10) as response:
        assert json.load(response) == {"status": "ok", "idle": True}
    with pytest.raises(ReportError, match="no data for experiment 'nope'"):
        get_json(endpoint, "/api/report/nope", {})
    with pytest.raises(ReportError, match="policy must be one of"):
        get_json(endpoint, "/api/report/x", {"policy": "all"})


def test_report_goes_through_the_sink_that_holds_the_store(
    api: tuple[SinkEndpoint, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, file = api

    def locked(url: str, **_: Any) -> Any:
        raise ClickHouseLockedError("open in another process", path="/x", pid=endpoint.pid)

    monkeypatch.setattr(sinks.clickhouse, "connect", locked)

    body = load_report(url="chdb:///x", database="abstream", endpoint_file=file, experiment="a b", policy="exclude")
    chosen = load_report(
        url="chdb:///x", database="abstream", endpoint_file=file, experiment="a b", policy="exclude", metric="m"
    )

    assert body == {"experiments": {"a b": {"policy": "exclude", "metric": None}}}
    assert chosen == {"experiments": {"a b": {"policy": "exclude", "metric": "m"}}}
    remove_endpoint(file, endpoint.pid + 1)  # another pid's file is left alone
    assert read_endpoint(file) == endpoint
    with pytest.raises(ReportError, match="No running sink API is recorded"):
        load_report(
            url="chdb:///x",
            database="abstream",
            endpoint_file=file.with_name("none.json"),
            experiment=None,
            policy="exclude",
        )
    remove_endpoint(file, endpoint.pid)
    assert read_endpoint(file) is None
