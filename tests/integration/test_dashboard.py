"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real sink and chDB.

A sink subprocess (its own data dir and store, as in test_sink_report) consumes half of a scenario;
the experiment page must show the numbers ClickHouse holds, one chart series per variant, a panel per
metric with the report's estimates, lifts and p-values, the guardrail badges, and then, after the other
half is produced, the new numbers without a reload. The store is read again by other processes once
the sink stops: ``abstream report`` and plain SQL against the older views (variant_minutes,
experiment_timeline), an independent reference for the series the dashboard now reads from the aggregates.

Chromium comes from the system (``apt-get install -y chromium``), never from ``playwright install``.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from deploy.topics import TopicSpec, create_topics
from schemas.metrics import ExperimentMetrics
from sinks.dashboard import DashboardData
from sinks.migrator import migrate
from sinks.report import fetch_report
from tests.integration.test_sink import Sink, publish
from tests.integration.test_sink_report import abstream, wait_until_caught_up
from tests.unit.sinks.scenario import Scenario, build_scenario

pytestmark = [pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
UNITS = 400
# moon_mars's conversions are clicks with a value; Mars converts twice as often as Moon (the control).
METRICS = ExperimentMetrics.model_validate({
    "primary": ["clicked"],
    "secondary": ["clicks", "click_value", "value_per_click", "click_value_p90"],
    "guardrails": ["clicked_guard", "purchased"],
    "correction": "benjamini-hochberg",
    "definitions": {
        "clicked": {"key": "clicked", "title": "Units who clicked", "type": "proportion",
                    "numerator": {"events": ["click"]}},
        "clicks": {"key": "clicks", "title": "Clicks per unit", "type": "mean", "numerator": {"events": ["click"]}},
        "click_value": {"key": "click_value", "title": "Click value per unit", "type": "mean", "cap": {"value": 60},
                        "numerator": {"events": ["click"], "aggregation": "sum"}},
        "value_per_click": {"key": "value_per_click", "title": "Value per click", "type": "ratio",
                            "numerator": {"events": ["click"], "aggregation": "sum"},
                            "denominator": {"events": ["click"]}},
        "click_value_p90": {"key": "click_value_p90", "title": "Click value per unit (p90 cap)", "type": "mean",
                            "cap": {"percentile": 0.9}, "numerator": {"events": ["click"], "aggregation": "sum"}},
        "clicked_guard": {"key": "clicked_guard", "title": "Units who clicked (must not rise)",
                          "type": "proportion", "direction": "decrease", "numerator": {"events": ["click"]}},
        "purchased": {"key": "purchased", "title": "Units who purchased", "type": "proportion",
                      "numerator": {"events": ["purchase"]}},
    },
})  # fmt: skip
HEALTH = ["srm", "mismatches", "late", "multi_variant"]
GUARDRAILS = ["guardrail:clicked_guard", "guardrail:purchased"]
SQL = """
import json, sys
from sinks.clickhouse import connect
client = connect(sys.argv[1], database=sys.argv[2], create_database=False)
print(json.dumps({q: [list(r) for r in client.query(q).result_rows] for q in sys.argv[3:]}))
"""
EXPOSED_SQL = "SELECT variant, sum(exposed_units) FROM variant_minutes WHERE experiment = 'moon_mars' GROUP BY variant"
COUNTED_SQL = (
    "SELECT variant, sum(units), sum(converting_units) FROM experiment_timeline(policy = 'exclude') "
    "WHERE experiment = 'moon_mars' GROUP BY variant"
)


# -- the scenario in two halves ------------------------------------------------------------------
def unit_index(unit: str) -> int:
    return int(unit.rsplit("-u", 1)[1])


def part(scenario: Scenario, keep: Callable[[str], bool]) -> Scenario:
    """The records and truth of the units ``keep`` accepts (definitions always)."""
    out = Scenario()
    for role, items in scenario.records.items():
        out.records[role] = [(k, r) for k, r in items if role == "experiment_definitions" or keep(k.decode())]
    out.units = {k: v for k, v in scenario.units.items() if keep(k[1])}
    out.conversions = {k: v for k, v in scenario.conversions.items() if keep(v["unit_id"])}
    out.flags = [f for f in scenario.flags if keep(f["unit_id"])]
    out.switched = {s for s in scenario.switched if keep(s[1])}
    return out


def correct_first_exposures(scenario: Scenario, count: int) -> list[str]:
    """Re-emit some moon_mars first exposures as the jobs do when an earlier exposure turns up late: a new
    event, 90 s earlier (another minute). Units without conversions or flags, so the truth stays as it is."""
    busy = {c["unit_id"] for c in scenario.conversions.values()} | {f["unit_id"] for f in scenario.flags}
    busy |= {unit for _, unit in scenario.switched}
    picked = [r for (e, u), r in scenario.units.items() if e == "moon_mars" and u not in busy][:count]
    for record in picked:
        earlier = {**record, "event_id": str(uuid.uuid4()), "client_ts": record["client_ts"] - 90_000, "duplicates": 0}
        scenario.records["first_exposures"].append((record["unit_id"].encode(), earlier))
    return [r["unit_id"] for r in picked]


def records(scenario: Scenario) -> int:
    return sum(map(len, scenario.records.values()))


# -- what the page shows -------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def table(page: Any) -> dict[str, dict[str, str]]:
    rows = page.locator("#report-table tbody tr")
    out = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        cells = row.locator("td")
        out[row.get_attribute("data-variant")] = {
            cells.nth(j).get_attribute("data-field"): cells.nth(j).inner_text() for j in range(cells.count())
        }
    return out


def assert_table_matches(shown: dict[str, dict[str, str]], report: dict[str, Any], truth: dict[str, Any]) -> None:
    """Cell by cell against the report ClickHouse computed, and the counts against the scenario's truth."""
    assert list(shown) == list(report["variants"])
    for name, v in report["variants"].items():
        cells = shown[name]
        assert cells["variant"].strip() == name
        for field in ("units", "converting_units", "conversions"):
            assert int(cells[field]) == v[field] == truth["variants"][name][field], (name, field)
        assert numbers(cells["rate"]) == pytest.approx([v["rate"] * 100, v["ci_half_width"] * 100], abs=0.0051)
        assert numbers(cells["ci"]) == pytest.approx([v["ci_low"] * 100, v["ci_high"] * 100], abs=0.0051)
        if v["is_control"]:
            assert cells["lift"] == "control" and cells["p_value"] == ""
        else:
            lift = [v["lift"] * 100, v["lift_ci_low"] * 100, v["lift_ci_high"] * 100]
            assert numbers(cells["lift"]) == pytest.approx(lift, abs=0.051)
            assert float(cells["p_value"]) == pytest.approx(v["p_value"], rel=1e-3)


def legend(page: Any, chart: str) -> dict[str, str]:
    items = page.locator(f"#{chart} .legend-item")
    return {
        items.nth(i).get_attribute("data-variant"): items.nth(i).locator("b").inner_text() for i in range(items.count())
    }


def assert_charts(page: Any, variants: list[str], buckets: int) -> None:
    """One series per variant in each chart; a line through every bucket; the rate chart has its CI band."""
    for chart in ("chart-exposures", "chart-rate"):
        series = page.locator(f"#{chart} svg g.series")
        assert [series.nth(i).get_attribute("data-variant") for i in range(series.count())] == variants
    for i in range(len(variants)):
        exposures = page.locator("#chart-exposures g.series").nth(i).locator("path.line").get_attribute("d")
        assert exposures.startswith("M") and exposures.count("L") == buckets  # from (start, 0) to every bucket end
        rate = page.locator("#chart-rate g.series").nth(i)
        assert rate.locator("path.line").get_attribute("d").count("L") >= 1
        assert rate.locator("path.band").get_attribute("d").endswith("Z")


# Every metric panel as the page shows it, read in one go.
PANELS_JS = """() => [...document.querySelectorAll("#metrics article.metric")].map((p) => ({
  key: p.dataset.metric, role: p.dataset.role, hasData: p.dataset.hasData, failed: p.dataset.guardrailFailed,
  header: p.querySelector("header").textContent,
  badge: p.querySelector("header .badge") ? p.querySelector("header .badge").dataset.level : null,
  noData: p.querySelector('[data-field="no-data"]') ? p.querySelector('[data-field="no-data"]').textContent : null,
  note: p.querySelector('[data-field="note"]') ? p.querySelector('[data-field="note"]').textContent : null,
  rows: Object.fromEntries([...p.querySelectorAll("tbody tr")].map((r) => [r.dataset.variant,
    Object.fromEntries([...r.querySelectorAll("[data-field]")].map((c) => [c.dataset.field, c.textContent]))])),
  legend: Object.fromEntries([...p.querySelectorAll(".legend-item")].map((i) => [i.dataset.variant,
    i.querySelector("b").textContent])),
  bands: [...p.querySelectorAll("svg.chart g.series")].map((g) => [g.dataset.variant,
    g.querySelector("path.band").getAttribute("d").endsWith("Z")]),
  liftBars: p.querySelectorAll("svg.lift-bar circle.point").length,
}))"""


def metric_panels(page: Any) -> dict[str, dict[str, Any]]:
    return {panel["key"]: panel for panel in page.evaluate(PANELS_JS)}


def shown_value(metric: dict[str, Any], text: str) -> list[float]:
    """The numbers of a value cell, in the report's units (a proportion is shown in %)."""
    return [n / 100 for n in numbers(text)] if metric["type"] == "proportion" else numbers(text)


def assert_metrics_match(panels: dict[str, dict[str, Any]], metrics: list[dict[str, Any]]) -> None:
    """Each metric's panel, in the report's order, against the report's numbers (to the digits shown)."""
    assert list(panels) == [m["key"] for m in metrics]
    for m in metrics:
        panel = panels[m["key"]]
        direction = "lower is better" if m["direction"] == "decrease" else "higher is better"
        assert (panel["role"], panel["hasData"]) == (m["role"], str(m["has_data"]).lower())
        assert all(part in panel["header"] for part in (m["role"], m["title"], m["type"], direction)), panel["header"]
        assert panel["failed"] == str(m["guardrail_failed"]).lower()
        if m["role"] == "guardrail":
            assert panel["badge"] == ("bad" if m["guardrail_failed"] else "ok" if m["has_data"] else "na")
        if not m["has_data"]:
            assert panel["rows"] == {} and panel["noData"].startswith("no data yet (")
            assert all(f"{name}: {v['units']} units" in panel["noData"] for name, v in m["variants"].items())
            continue
        assert list(panel["rows"]) == list(m["variants"])
        for name, v in m["variants"].items():
            assert_metric_row(m, name, panel["rows"][name], v)
        if (m["cap"] or {}).get("percentile") is not None:
            assert panel["note"] and "percentile" in panel["note"] and panel["bands"] == []
            continue
        assert panel["bands"] == [[name, True] for name in m["variants"]]  # a line and a closed CI band each
        for name, v in m["variants"].items():
            assert shown_value(m, panel["legend"][name]) == pytest.approx([v["value"]], rel=1e-3, abs=5e-5)
        assert panel["liftBars"] == sum(v["lift"] is not None and v["lift"]["relative"] is not None
                                        for v in m["variants"].values())  # fmt: skip


def assert_metric_row(m: dict[str, Any], name: str, cells: dict[str, str], v: dict[str, Any]) -> None:
    close = {"rel": 1e-3, "abs": 5e-5}  # 4 significant digits, or a rate to 0.01%
    assert cells["variant"].strip() == name
    assert int(cells["units"]) == v["units"] and numbers(cells["nonzero_units"]) == [v["nonzero_units"]]
    assert shown_value(m, cells["value"]) == pytest.approx([v["value"]], **close)
    assert shown_value(m, cells["ci"]) == pytest.approx([v["ci_low"], v["ci_high"]], **close)
    if v["is_control"]:
        assert cells["lift"] == "control" and "p_value" not in cells
        return
    lift = v["lift"]
    relative = [lift["relative"], lift["relative_ci_low"], lift["relative_ci_high"]]
    shown = numbers(cells["lift"] + " " + cells["lift_ci"])
    assert [n / 100 for n in shown] == pytest.approx(relative, abs=5.1e-4)  # shown to 0.1%
    absolute = [lift["absolute"], lift["absolute_ci_low"], lift["absolute_ci_high"]]
    assert shown_value(m, cells["diff"] + " " + cells["diff_ci"]) == pytest.approx(absolute, **close)
    assert float(cells["p_value"]) == pytest.approx(lift["p_value"], rel=1e-3)
    lifts = [w["lift"] for w in m["variants"].values() if w["lift"]]
    moved = [x for x in lifts if x["p_value"] is not None and not math.isclose(x["p_value_adjusted"], x["p_value"])]
    assert ("p_adjusted" in cells) == bool(moved)  # shown when the correction moved a p-value
    if "p_adjusted" in cells:
        assert numbers(cells["p_adjusted"]) == pytest.approx([lift["p_value_adjusted"]], rel=1e-3)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Debian chromium with a fresh profile under tmp_path."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (as root: apt-get update && apt-get install -y "
            "chromium). The dashboard test drives a real browser; `playwright install` is not used."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the dashboard test needs Playwright for Python: pip install 'playwright>=1.45'")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def sink_env(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    create_topics(
        AdminClient({"bootstrap.servers": kafka_bootstrap}), TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    )
    data_dir = tmp_path / "data"
    return {
        **os.environ, "ABSTREAM_DATA_DIR": str(data_dir), "ABSTREAM_CLICKHOUSE_URL": f"chdb://{data_dir / 'ch'}",
        "ABSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "ABSTREAM_TOPIC_PREFIX": topic_prefix,
        "ABSTREAM_SINK_GROUP": f"sink-{uuid.uuid4().hex[:8]}", "ABSTREAM_SINK_BATCH_INTERVAL_S": "0.2",
    }  # fmt: skip


def start_sink(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "abstream", "sink", "run"], env=env, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[Any], signum: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(signum)
    return proc.wait(timeout=60)


# -- tests ---------------------------------------------------------------------------------------
def test_the_series_end_where_the_report_stands(kafka_bootstrap: str, topic_prefix: str, clickhouse: Any) -> None:
    create_topics(
        AdminClient({"bootstrap.servers": kafka_bootstrap}), TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    )
    migrate(clickhouse)
    scenario = build_scenario(units=300, metrics={"moon_mars": METRICS})
    assert len(correct_first_exposures(scenario, 12)) == 12
    sink = Sink(kafka_bootstrap, topic_prefix, clickhouse, f"sink-{uuid.uuid4().hex[:8]}")
    publish(sink, scenario.records)
    sink.run()
    summed = dict(clickhouse.query(
        "SELECT variant, sum(exposed_units) FROM variant_minutes WHERE experiment = 'moon_mars' GROUP BY variant"
    ).result_rows)  # fmt: skip
    raw_moon_mars = scenario.expected("first_seen")["moon_mars"]["variants"]
    # each unit once, in its earliest first exposure's minute, corrected first exposures included
    assert summed == {name: v["units"] for name, v in raw_moon_mars.items()}

    for policy in ("exclude", "first_seen"):
        for key, want in scenario.expected(policy).items():
            body = DashboardData(clickhouse).experiment(key, policy)
            report = fetch_report(clickhouse, key, policy=policy)["experiments"][key]
            assert body["report"] == report
            raw = scenario.expected("first_seen")[key]["variants"]
            for name, v in report["variants"].items():
                series = body["series"]["variants"][name]
                assert series["exposed_units"][-1] == raw[name]["units"]  # each corrected unit once
                assert series["units"][-1] == v["units"] == want["variants"][name]["units"]
                assert series["converting_units"][-1] == v["converting_units"]
                assert (series["rate"][-1], series["ci_low"][-1], series["ci_high"][-1]) == pytest.approx(
                    (v["rate"], v["ci_low"], v["ci_high"])
                )
                assert all(a <= b for a, b in zip(series["units"], series["units"][1:], strict=False))
            assert body["series"]["step_ms"] == 60_000 and body["series"]["buckets"] >= 5
            assert [m["key"] for m in report["metrics"]] == ([s.key for _, s in METRICS.in_order()]
                                                             if key == "moon_mars" else [])  # fmt: skip
            for metric in report["metrics"]:
                assert_metric_series_end_at_the_report(body["series"], metric)


def assert_metric_series_end_at_the_report(series: dict[str, Any], metric: dict[str, Any]) -> None:
    shown = series["metrics"][metric["key"]]
    assert (shown["version"], shown["type"]) == (metric["version"], metric["type"])
    if (metric["cap"] or {}).get("percentile") is not None:
        assert shown["variants"] == {} and "percentile" in shown["note"]
        return
    assert list(shown["variants"]) == list(metric["variants"])
    for name, v in metric["variants"].items():
        got = shown["variants"][name]
        assert len(got["value"]) == series["buckets"]
        last = (got["value"][-1], got["ci_low"][-1], got["ci_high"][-1])
        assert last == pytest.approx((v["value"], v["ci_low"], v["ci_high"]), rel=1e-9, abs=1e-12), metric["key"]


def test_the_page_shows_the_store_and_follows_the_pipeline_without_reloading(
    browser: Any, sink_env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = build_scenario(units=UNITS, metrics={"moon_mars": METRICS})
    first, rest = (
        part(scenario, lambda u: unit_index(u) < UNITS // 2),
        part(scenario, lambda u: unit_index(u) >= UNITS // 2),
    )
    producer = Sink(kafka_bootstrap, topic_prefix, None, "")
    publish(producer, first.records)
    data_dir = Path(sink_env["ABSTREAM_DATA_DIR"])
    proc = start_sink(sink_env, tmp_path / "sink.log")
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    try:
        wait_until_caught_up(data_dir / "sink.json", records(first), proc)
        base = json.loads((data_dir / "sink.json").read_text())
        base_url = f"http://{base['host']}:{base['port']}/"
        printed = abstream(sink_env, "dashboard")
        assert printed.returncode == 0 and f"Dashboard: {base_url} " in printed.stdout, printed

        page.goto(base_url)
        page.wait_for_selector('tr[data-experiment="moon_mars"] [data-badge="guardrail:purchased"]')
        row = page.locator('tr[data-experiment="moon_mars"]')
        assert [b.get_attribute("data-badge") for b in row.locator(".badge").all()] == HEALTH + GUARDRAILS
        assert page.locator('tr[data-experiment="gold_white"] .badge').count() == len(HEALTH)  # it names no metrics
        page.screenshot(path=tmp_path / "index.png", full_page=True)
        page.locator('tr[data-experiment="moon_mars"] a').click()
        page.wait_for_selector('#app:not([data-updates="0"]) #report-table')
        assert page.url == f"{base_url}experiments/moon_mars?policy=exclude"
        loaded = len(navigations)
        check_page(page, get(f"{base_url}api/report/moon_mars")["experiments"]["moon_mars"], first)
        page.evaluate("window.__sameDocument = 'yes'")
        updates = int(page.locator("#app").get_attribute("data-updates"))

        publish(producer, rest.records)
        wait_until_caught_up(data_dir / "sink.json", records(scenario), proc)
        moon_units = scenario.expected("exclude")["moon_mars"]["variants"]["Moon"]["units"]
        from playwright.sync_api import expect

        expect(page.locator('#report-table tr[data-variant="Moon"] td[data-field="units"]')).to_have_text(
            str(moon_units), timeout=60_000
        )
        page.wait_for_timeout(500)  # the rest of the same redraw
        final = get(f"{base_url}api/report/moon_mars")["experiments"]["moon_mars"]
        check_page(page, final, scenario)
        assert page.evaluate("window.__sameDocument") == "yes" and len(navigations) == loaded
        assert int(page.locator("#app").get_attribute("data-updates")) > updates
        guard = next(m for m in final["metrics"] if m["key"] == "clicked_guard")
        assert guard["guardrail_failed"]  # Mars clicks twice as often: the guardrail's red badge
        assert page.locator('#badges [data-badge="guardrail:clicked_guard"]').get_attribute("data-level") == "bad"
        shown = {"table": table(page), "exposures": legend(page, "chart-exposures"), "rate": legend(page, "chart-rate"),
                 "metrics": metric_panels(page)}  # fmt: skip
        screenshot = tmp_path / "dashboard.png"
        page.screenshot(path=screenshot, full_page=True)
        page.locator('article[data-metric="clicked"]').screenshot(path=tmp_path / "metric-panel.png")
        print(f"dashboard screenshots: {screenshot}, {tmp_path / 'metric-panel.png'}, {tmp_path / 'index.png'}")
    finally:
        code = stop(proc)
    assert code == 0, (tmp_path / "sink.log").read_text()[-3000:]
    assert problems == []
    assert screenshot.read_bytes().startswith(b"\x89PNG")

    # The store itself, read by other processes now that the sink has let it go.
    direct = abstream(sink_env, "report", "moon_mars", "--json")
    assert direct.returncode == 0, direct.stderr
    stored = json.loads(direct.stdout)["experiments"]["moon_mars"]
    assert_table_matches(shown["table"], stored, scenario.expected("exclude")["moon_mars"])
    assert_metrics_match(shown["metrics"], stored["metrics"])
    rows = sql(sink_env, EXPOSED_SQL, COUNTED_SQL)
    assert {name: str(n) for name, n in rows[EXPOSED_SQL]} == shown["exposures"]
    assert {name: pct(c / u) for name, u, c in rows[COUNTED_SQL]} == shown["rate"]


def check_page(page: Any, report: dict[str, Any], truth: Scenario) -> None:
    """Table, badges and charts of the moon_mars page against the report and the scenario's truth."""
    want = truth.expected("exclude")["moon_mars"]
    assert_table_matches(table(page), report, want)
    badges = {b.get_attribute("data-badge"): b for b in page.locator("#badges .badge").all()}
    assert list(badges) == HEALTH + GUARDRAILS
    assert badges["srm"].get_attribute("data-level") == ("bad" if report["srm_p"] < 0.001 else "ok")
    mismatches = f"{report['mismatches']} of {report['exposures']} exposures"
    assert badges["mismatches"].inner_text().endswith(f"{mismatches} ({pct(report['mismatch_rate'])})")
    assert report["mismatches"] == want["mismatches"] > 0
    assert f"{report['multi_variant_units']} of {report['exposed_units']} units" in badges["multi_variant"].inner_text()
    assert f"{report['late_conversions']} of " in badges["late"].inner_text()
    variants = list(report["variants"])
    assert_charts(page, variants, drawn_buckets(page))
    raw = truth.expected("first_seen")["moon_mars"]["variants"]
    assert legend(page, "chart-exposures") == {name: str(raw[name]["units"]) for name in variants}
    assert legend(page, "chart-rate") == {name: pct(v["rate"]) for name, v in report["variants"].items()}
    assert_metrics_match(metric_panels(page), report["metrics"])
    for metric in report["metrics"]:
        if metric["role"] == "guardrail":
            level = "bad" if metric["guardrail_failed"] else "ok" if metric["has_data"] else "na"
            assert badges[f"guardrail:{metric['key']}"].get_attribute("data-level") == level


def drawn_buckets(page: Any) -> int:
    """How many time buckets the page has, from the JSON it polls (same origin, same policy)."""
    return int(get(page.url.replace("/experiments/", "/api/dashboard/"))["series"]["buckets"])


def sql(env: dict[str, str], *queries: str) -> dict[str, list[list[Any]]]:
    database = env.get("ABSTREAM_CLICKHOUSE_DATABASE", "abstream")
    done = subprocess.run(
        [sys.executable, "-c", SQL, env["ABSTREAM_CLICKHOUSE_URL"], database, *queries],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_command_serves_the_store_itself_when_no_sink_runs(
    browser: Any, sink_env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = build_scenario(units=120)
    publish(Sink(kafka_bootstrap, topic_prefix, None, ""), scenario.records)
    filled = abstream(sink_env, "sink", "run", "--until-idle")
    assert filled.returncode == 0, filled.stderr[-3000:]
    direct = json.loads(abstream(sink_env, "report", "--json").stdout)

    proc = subprocess.Popen(
        [sys.executable, "-m", "abstream", "dashboard", "--port", "0"], env=sink_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.match(r"Dashboard: (http://\S+/) ", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        url = match.group(1)
        again = abstream(sink_env, "dashboard")
        through = abstream(sink_env, "report", "--json")
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector('tr[data-experiment="gold_white"]')
        page.screenshot(path=tmp_path / "index.png", full_page=True)
        print(f"dashboard index screenshot: {tmp_path / 'index.png'}")
        index = {row.get_attribute("data-experiment"): row.locator("td").nth(4).inner_text()
                 for row in page.locator("tr[data-experiment]").all()}  # fmt: skip
        body = get(f"{url}api/dashboard/gold_white")
        health = get(f"{url}healthz")
    finally:
        code = stop(proc, signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # closes the pipes

    assert code == 0 and "abstream dashboard: stopped" in out, err
    assert (
        again.returncode == 0 and f"Dashboard: {url} (served by `abstream dashboard`, pid {proc.pid})" in again.stdout
    )
    assert json.loads(through.stdout) == direct  # abstream report reaches the store through the dashboard
    assert health["pid"] == proc.pid and health["mode"] == "dashboard"
    assert index == {
        key: str(sum(v["units"] for v in e["variants"].values())) for key, e in direct["experiments"].items()
    }
    assert body["report"] == direct["experiments"]["gold_white"]
    assert list(body["series"]["variants"]) == ["White", "Gold", "Silver"]
    assert not (Path(sink_env["ABSTREAM_DATA_DIR"]) / "sink.json").exists()
