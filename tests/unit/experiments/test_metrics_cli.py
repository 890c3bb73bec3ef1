"""``abstream metrics`` and the metrics side of ``abstream experiments validate`` (no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abstream.cli import app
from abstream.cli import experiments as experiments_cli
from abstream.cli.experiments import default_definitions_dir
from abstream.cli.metrics import default_metrics_dir
from deploy.definitions_topic import DefinitionStore
from schemas.definitions import load_definitions
from tests.unit.experiments.base import BASE, write

runner = CliRunner()


def test_validate_prints_one_ok_line_per_shipped_metric() -> None:
    result = runner.invoke(app, ["metrics", "validate"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 7 and all(line.endswith("  ok") for line in lines)
    assert "revenue_per_order r1 (ratio of sum(purchase.value) / count(purchase))  ok" in lines
    assert "revenue_per_visitor r1 (mean of sum(purchase.value), cap 1000)  ok" in lines
    assert "gold_btn_click r1 (proportion of button_click[btn in white_gold])  ok" in lines
    assert "bounce r1 (proportion of bounce, lower is better)  ok" in lines


def test_validate_lists_every_problem_on_stderr(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "key: m\ntitle: M\ntype: ratio\nnumerator: {events: e}\nwindow: soon\n")

    result = runner.invoke(app, ["metrics", "validate", str(bad)])

    assert result.exit_code == 1
    assert f"{bad}: denominator: is required for a ratio; add it" in result.stderr
    assert f"{bad}: window: 'soon' is not a positive duration" in result.stderr


def test_list_shows_key_type_events_and_title() -> None:
    result = runner.invoke(app, ["metrics", "list"])

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    assert [
        "gold_btn_click",
        "proportion",
        "button_click",
        "White/Gold",
        "button",
        "(visitors",
        "who",
        "clicked)",
    ] in rows
    assert ["revenue_per_order", "ratio", "purchase", "Revenue", "per", "order"] in rows


def test_show_prints_the_canonical_json_and_the_experiments_naming_it() -> None:
    result = runner.invoke(app, ["metrics", "show", "bounce"])

    assert result.exit_code == 0, result.output
    spec, end = json.JSONDecoder().raw_decode(result.stdout)
    named = result.stdout[end:]
    assert (spec["key"], spec["direction"], spec["numerator"]["events"]) == ("bounce", "decrease", ["bounce"])
    assert "  moon_mars r1: guardrail" in named and "  white_gold_btn r1: guardrail" in named


def test_show_refuses_an_unknown_key_listing_the_known_ones() -> None:
    result = runner.invoke(app, ["metrics", "show", "reserve_clik"])

    assert result.exit_code == 2
    assert "no metric 'reserve_clik'" in result.output and "reserve_click" in result.output


def test_show_and_list_read_another_catalog(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir(), (tmp_path / "experiments").mkdir()
    write(
        tmp_path / "metrics", "m.yaml", {"key": "signup", "title": "Signups", "type": "proportion", "events": "signup"}
    )
    write(tmp_path / "experiments", "checkout.yaml", {**BASE, "metrics": {"secondary": ["signup"]}})
    options = ["--metrics", str(tmp_path / "metrics"), "--experiments", str(tmp_path / "experiments")]

    listed = runner.invoke(app, ["metrics", "list", "--metrics", str(tmp_path / "metrics")])
    shown = runner.invoke(app, ["metrics", "show", "signup", *options])

    assert listed.stdout.split() == ["signup", "proportion", "signup", "Signups"]
    assert shown.exit_code == 0, shown.output
    assert "  checkout r1: secondary" in shown.stdout


def test_experiments_validate_prints_the_metrics_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    shipped = runner.invoke(app, ["experiments", "validate"])
    bad = write(tmp_path, "checkout.yaml", {**BASE, "metrics": {"primary": ["reserve_clik"]}})

    unknown = runner.invoke(app, ["experiments", "validate", str(bad), "--metrics", str(default_metrics_dir())])

    assert shipped.exit_code == 0, shipped.output
    assert "  metrics: primary gold_btn_click; secondary revenue_per_visitor, orders_per_visitor; guardrail bounce" in (
        shipped.stdout
    )
    assert unknown.exit_code == 1
    assert (
        f"{bad}: metrics.primary[0]: unknown metric 'reserve_clik' (did you mean 'reserve_click'?); "
        f"the catalog ({default_metrics_dir()}) defines: bounce, clicks_per_visitor, gold_btn_click, "
    ) in unknown.stderr


def test_experiments_validate_against_a_previous_catalog_reports_the_changed_metric(tmp_path: Path) -> None:
    for tree in ("old", "new"):
        (tmp_path / tree / "metrics").mkdir(parents=True), (tmp_path / tree / "experiments").mkdir()
        write(tmp_path / tree / "experiments", "checkout.yaml", {**BASE, "metrics": {"primary": ["signup"]}})
    metric = {"key": "signup", "title": "Signups", "type": "proportion", "events": "signup"}
    write(tmp_path / "old" / "metrics", "m.yaml", metric)
    write(tmp_path / "new" / "metrics", "m.yaml", {**metric, "window": "1d"})

    result = runner.invoke(
        app,
        [
            "experiments",
            "validate",
            str(tmp_path / "new" / "experiments"),
            "--against",
            str(tmp_path / "old" / "experiments"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert (
        "analysis: metrics.signup: 'r1' → 'r1' (its definition changed (window_ms); the readout changes)"
        in result.stdout
    )


def test_experiments_show_prints_the_metrics_block(monkeypatch: pytest.MonkeyPatch) -> None:
    moon_mars = load_definitions(default_definitions_dir())["moon_mars"].to_record()
    store = DefinitionStore({(moon_mars.key, moon_mars.revision): moon_mars})
    monkeypatch.setattr(experiments_cli, "_store", lambda bootstrap=None: store)

    result = runner.invoke(app, ["experiments", "show", "moon_mars"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["metrics"]["primary"] == ["reserve_click"] and shown["metrics"]["guardrails"] == ["bounce"]
    assert shown["metrics"]["definitions"]["revenue_per_order"]["type"] == "ratio"
