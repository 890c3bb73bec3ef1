"""The metric catalog's files: every mistake named precisely, both file forms, the shipped catalog valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from abstream.cli.metrics import default_metrics_dir
from abstream.errors import DefinitionError
from schemas.metric_catalog import MetricCatalog, catalog_for, load_metrics, parse_metric
from schemas.metrics import Cap, MetricSide, MetricSpec
from tests.unit.experiments.base import write

PROPORTION: dict[str, Any] = {
    "key": "reserve_click",
    "title": "Reserve",
    "type": "proportion",
    "events": "reserve_click",
}
MEAN: dict[str, Any] = {
    "key": "revenue",
    "title": "Revenue",
    "type": "mean",
    "events": "purchase",
    "aggregation": "sum",
}
RATIO: dict[str, Any] = {
    "key": "aov",
    "title": "Average order value",
    "type": "ratio",
    "numerator": {"events": "purchase", "aggregation": "sum"},
    "denominator": {"events": "purchase"},
}


def _problems(data: object) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_metric(data, source="m.yaml")
    return caught.value.problems


def test_the_friendly_form_gives_the_canonical_spec() -> None:
    written = {**PROPORTION, "filter": {"btn_type": {"in": ["Mars", "Moon"]}}, "window": "1h", "direction": "decrease"}

    assert parse_metric(written) == MetricSpec(
        key="reserve_click", revision=1, title="Reserve", type="proportion",
        numerator=MetricSide(events=["reserve_click"], filter={"btn_type": ["Mars", "Moon"]}),
        window_ms=3_600_000, direction="decrease",
    )  # fmt: skip
    assert parse_metric({**MEAN, "cap": 100}).cap == Cap(value=100)
    assert parse_metric({**MEAN, "cap": {"percentile": 0.99}}).cap == Cap(percentile=0.99)
    ratio = parse_metric(RATIO)
    assert ratio.denominator == MetricSide(events=["purchase"]) and ratio.numerator.aggregation == "sum"


@pytest.mark.parametrize(
    "filter_",
    [{"btn_type": "Moon"}, {"btn_type": ["Moon"]}, {"btn_type": {"in": ["Moon"]}}],
)
def test_a_filter_takes_a_value_a_list_or_in(filter_: dict[str, Any]) -> None:
    assert parse_metric({**PROPORTION, "filter": filter_}).numerator.filter == {"btn_type": ["Moon"]}


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({**PROPORTION, "type": "rate"}, "type", "'rate' is not allowed; use 'proportion', 'mean' or 'ratio'"),
        (
            {k: v for k, v in RATIO.items() if k != "denominator"},
            "denominator",
            "is required for a ratio; add it (e.g. denominator: {events: purchase})",
        ),
        (
            {**RATIO, "events": "purchase"},
            "events",
            "a ratio takes events from its numerator and denominator blocks; move it into them",
        ),
        (
            {**PROPORTION, "denominator": {"events": "visit"}},
            "denominator",
            "only a ratio has a denominator; a proportion names its events at the top level",
        ),
        (
            {**PROPORTION, "aggregation": "sum"},
            "aggregation",
            "a proportion is 1 for a unit with a matching event, else 0, so it does not sum; use type: mean",
        ),
        ({**PROPORTION, "cap": 10}, "cap", "a proportion is 0 or 1 per unit, so there is nothing to cap; remove cap"),
        ({**MEAN, "aggregation": "avg"}, "aggregation", "'avg' is not allowed; use 'count' or 'sum'"),
        ({k: v for k, v in MEAN.items() if k != "events"}, "events", "is required for a mean; add it (e.g. events:"),
        (
            {**PROPORTION, "filter": ["btn_type"]},
            "filter",
            "must map event properties to their allowed values, e.g. filter: {btn_type: [Moon, Mars]}, got ['btn_",
        ),
        (
            {**PROPORTION, "filter": {"btn_type": {"not_in": ["Moon"]}}},
            "filter.btn_type",
            "a filter value is a string, a list of strings or {in: [...]}, got {'not_in': ['Moon']}",
        ),
        ({**PROPORTION, "filter": {"level": 3}}, "filter.level", "event properties are strings, so quote numbers"),
        ({**PROPORTION, "window": "1 day"}, "window", "'1 day' is not a positive duration; write e.g. 7d"),
        ({**MEAN, "cap": {}}, "cap", "give exactly one of value (e.g. cap: 100) or percentile"),
        ({**MEAN, "cap": {"value": 100, "percentile": 0.99}}, "cap", "give exactly one of value (e.g. cap: 100)"),
        ({**MEAN, "cap": "100"}, "cap", "write a fixed bound (cap: 100) or a percentile of the units"),
        ({**MEAN, "cap": {"percentile": 99}}, "cap.percentile", "should be less than 1"),
        (
            {**RATIO, "numerator": {"events": "purchase", "agg": "sum"}},
            "numerator.agg",
            "the fields are: events, filter",
        ),
        (
            {**PROPORTION, "key": "reserve-click"},
            "key",
            "must start with a letter and hold only letters, digits and '_'",
        ),
        ({**PROPORTION, "direction": "up"}, "direction", "'up' is not allowed; use 'increase' or 'decrease'"),
        ({**PROPORTION, "colour": "red"}, "colour", "is not a known field; the fields are: key, revision, title"),
        ({k: v for k, v in PROPORTION.items() if k != "type"}, "type", "is required; add it (e.g. type: proportion)"),
    ],
)
def test_a_mistake_names_the_file_the_field_and_the_fix(data: dict[str, Any], field: str, message: str) -> None:
    problems = _problems(data)

    assert [where for where, _ in problems] == [f"m.yaml: {field}"], problems
    assert message in problems[0][1]


def test_every_problem_of_a_metric_at_once() -> None:
    problems = _problems({"type": "proportion", "aggregation": "sum", "cap": 3, "window": "soon"})

    assert [where for where, _ in problems] == [
        "m.yaml: events",
        "m.yaml: aggregation",
        "m.yaml: cap",
        "m.yaml: window",
        "m.yaml: key",
        "m.yaml: title",
    ]


def test_a_file_holds_one_metric_or_a_list(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", PROPORTION)
    write(tmp_path, "several.yml", "- " + "\n- ".join(_inline(d) for d in (MEAN, RATIO)) + "\n")

    catalog = load_metrics(tmp_path)

    assert list(catalog) == ["reserve_click", "revenue", "aov"]
    assert isinstance(catalog, MetricCatalog) and catalog.source == str(tmp_path)


def _inline(data: dict[str, Any]) -> str:
    return json.dumps(data)  # JSON is YAML: one flow mapping per line


def test_every_problem_of_every_file_is_reported_and_a_key_defined_twice_names_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", PROPORTION)
    write(tmp_path, "b.yaml", "- " + _inline({**MEAN, "type": "rate"}) + "\n- " + _inline(PROPORTION) + "\n")
    write(tmp_path, "c.yaml", "key: x\nkey: y\n")
    write(tmp_path, "d.yaml", "[]\n")
    write(tmp_path, "e.yaml", "- just a name\n")

    with pytest.raises(DefinitionError) as caught:
        load_metrics(tmp_path)

    where = [place.removeprefix(f"{tmp_path}/") for place, _ in caught.value.problems]
    assert where == ["b.yaml[0]: type", "b.yaml[1]: key", "c.yaml:2:1", "d.yaml", "e.yaml[0]"]
    messages = dict(zip(where, (what for _, what in caught.value.problems), strict=True))
    assert messages["b.yaml[1]: key"] == f"'reserve_click' is also defined in {first}; define each metric once"
    assert "duplicate key 'key' (first on line 1)" in messages["c.yaml:2:1"]
    assert "holds an empty list" in messages["d.yaml"]
    assert "must be a mapping of fields (key: ..., type: ..., ...), got a str" in messages["e.yaml[0]"]


def test_a_directory_without_metric_files_or_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"holds no \*\.yaml metric files"):
        load_metrics(tmp_path)
    with pytest.raises(DefinitionError, match="no such file or directory"):
        load_metrics(tmp_path / "missing")


def test_the_default_catalog_is_the_metrics_directory_beside_the_experiments(tmp_path: Path) -> None:
    alone = tmp_path / "elsewhere" / "experiments"
    (tmp_path / "experiments").mkdir(), (tmp_path / "metrics").mkdir(), alone.mkdir(parents=True)
    experiment = write(tmp_path / "experiments", "x.yaml", "key: x\n")
    write(tmp_path / "metrics", "m.yaml", PROPORTION)

    beside = catalog_for(tmp_path / "experiments")

    assert list(beside) == ["reserve_click"] and beside.source == str((tmp_path / "metrics").resolve())
    assert catalog_for([experiment]) == beside
    assert catalog_for(alone) == MetricCatalog() and catalog_for(alone).source == ""
    assert catalog_for(tmp_path / "experiments", {}) == {}
    assert list(catalog_for(alone, tmp_path / "metrics")) == ["reserve_click"]


def test_the_shipped_demo_catalog_validates() -> None:
    catalog = load_metrics(default_metrics_dir())

    assert set(catalog) == {
        "reserve_click", "clicks_per_visitor", "bounce", "gold_btn_click",
        "revenue_per_visitor", "revenue_per_order", "orders_per_visitor",
    }  # fmt: skip
    assert catalog["reserve_click"].numerator == MetricSide(events=["reserve_click"])
    assert catalog["bounce"].direction == "decrease" and catalog["bounce"].type == "proportion"
    assert catalog["gold_btn_click"].numerator == MetricSide(events=["button_click"], filter={"btn": ["white_gold"]})
    assert catalog["revenue_per_visitor"].cap == Cap(value=1000)
    assert catalog["revenue_per_visitor"].numerator.aggregation == "sum"
    assert catalog["revenue_per_order"].denominator == MetricSide(events=["purchase"])
    assert (catalog["orders_per_visitor"].type, catalog["clicks_per_visitor"].type) == ("mean", "mean")
