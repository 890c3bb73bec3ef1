"""An experiment's metrics block: resolved against the catalog, published in its record, versioned by revision."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from abstream.cli.experiments import default_definitions_dir
from abstream.errors import DefinitionError
from deploy.definitions_topic import DefinitionStore, plan_publish
from schemas.definition_changes import check_transition, errors_of
from schemas.definitions import Definition, load_definitions, parse_definition
from schemas.metric_catalog import MetricCatalog, load_metrics
from schemas.metrics import ExperimentMetrics, MetricSide, MetricSpec
from schemas.models import ExperimentDefinition
from schemas.serde import AvroSerde
from tests.unit.experiments.base import BASE, write

PUBLISHED_AT = datetime(2025, 1, 2, tzinfo=UTC)


def _spec(key: str, **changes: Any) -> MetricSpec:
    fields: dict[str, Any] = {"key": key, "title": key.title(), "type": "proportion", "numerator": {"events": [key]}}
    return MetricSpec.model_validate({**fields, **changes})


CATALOG = MetricCatalog(
    {key: _spec(key) for key in ("bounce", "clicks_per_visitor", "reserve_click")}, source="deploy/metrics"
)
BLOCK = {"primary": ["reserve_click"], "secondary": ["clicks_per_visitor"], "guardrails": ["bounce"]}


def _definition(metrics: object = BLOCK, catalog: MetricCatalog = CATALOG, **changes: Any) -> Definition:
    return parse_definition({**BASE, "metrics": metrics, **changes}, source="x.yaml", metrics=catalog)


def _problems(metrics: object, catalog: MetricCatalog = CATALOG, **changes: Any) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        _definition(metrics, catalog, **changes)
    return caught.value.problems


def test_the_block_is_resolved_with_the_catalog_definitions() -> None:
    metrics = _definition({**BLOCK, "correction": "holm"}).metrics

    assert [(role, spec.key) for role, spec in metrics.in_order()] == [
        ("primary", "reserve_click"),
        ("secondary", "clicks_per_visitor"),
        ("guardrail", "bounce"),
    ]
    assert metrics.definitions["bounce"] == CATALOG["bounce"] and metrics.correction == "holm"


@pytest.mark.parametrize("empty", [None, {}])
def test_an_experiment_without_metrics_is_valid_and_records_none(empty: object) -> None:
    definition = _definition(empty)

    assert definition.metrics == ExperimentMetrics() and definition.to_record().metrics == ""
    assert parse_definition(BASE).metrics == ExperimentMetrics()


def test_an_unknown_key_names_the_known_ones() -> None:
    (problem,) = _problems({"primary": ["reserve_clik"]})

    assert problem == (
        "x.yaml: metrics.primary[0]",
        "unknown metric 'reserve_clik' (did you mean 'reserve_click'?); the catalog (deploy/metrics) defines: "
        "bounce, clicks_per_visitor, reserve_click",
    )


def test_an_unknown_key_without_a_catalog_says_where_one_is_looked_for() -> None:
    (problem,) = _problems({"guardrails": ["bounce"]}, MetricCatalog())

    assert problem[0] == "x.yaml: metrics.guardrails[0]"
    assert "no metric catalog was found; put metric files in a metrics directory beside" in problem[1]


def test_a_metric_under_two_roles_or_twice_is_refused() -> None:
    problems = _problems({"primary": ["bounce", "reserve_click", "reserve_click"], "guardrails": ["bounce"]})

    once = "name each metric once, under one role"
    assert problems == [
        ("x.yaml: metrics.primary[2]", f"'reserve_click' is already named at metrics.primary[1]; {once}"),
        ("x.yaml: metrics.guardrails[0]", f"'bounce' is already named at metrics.primary[0]; {once}"),
    ]


def test_a_metric_window_longer_than_the_attribution_window_is_refused() -> None:
    catalog = MetricCatalog(
        {"late": _spec("late", window_ms=14 * 86_400_000), "soon": _spec("soon", window_ms=3_600_000)}
    )

    (problem,) = _problems({"primary": ["soon"], "secondary": ["late"]}, catalog)

    assert problem == (
        "x.yaml: metrics.secondary[0]",
        "metric 'late' has window 14d, longer than the attribution_window 7d: the stream jobs attribute no event "
        "beyond the experiment's window; shorten the metric's window or lengthen attribution_window",
    )
    assert _definition({"primary": ["late"]}, catalog, attribution_window="14d").metrics.primary == ["late"]


@pytest.mark.parametrize(
    ("block", "field", "message"),
    [
        ("bounce", "metrics", "must map roles to metric keys, e.g. metrics: {primary: [reserve_click]"),
        ({"guardrail": ["bounce"]}, "metrics.guardrail", "the fields are: primary, secondary, guardrails, correction"),
        ({"primary": [3]}, "metrics.primary[0]", "should be a valid string, got 3 (int)"),
        ({"correction": "bonferroni"}, "metrics.correction", "use 'none', 'holm' or 'benjamini-hochberg'"),
    ],
)
def test_a_malformed_block_names_the_field(block: object, field: str, message: str) -> None:
    (problem,) = _problems(block)

    assert problem[0] == f"x.yaml: {field}" and message in problem[1]


def test_a_role_may_name_one_key_without_a_list() -> None:
    assert _definition({"primary": "reserve_click"}).metrics.primary == ["reserve_click"]


def _through_avro(record: ExperimentDefinition) -> ExperimentDefinition:
    serde = AvroSerde("ExperimentDefinition")
    return ExperimentDefinition.from_avro(serde.decode(serde.encode(record.to_avro())))


def test_yaml_to_definition_to_avro_bytes_and_back(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir(), (tmp_path / "metrics").mkdir()
    catalog = (
        "- {key: reserve_click, title: Reserve, type: proportion, events: reserve_click, window: 1d}\n"
        "- {key: aov, title: AOV, type: ratio, numerator: {events: purchase, aggregation: sum},\n"
        "   denominator: {events: purchase}, cap: {percentile: 0.99}}\n"
    )
    write(tmp_path / "metrics", "m.yaml", catalog)
    block = {"primary": ["reserve_click"], "secondary": ["aov"]}
    write(tmp_path / "experiments", "checkout.yaml", {**BASE, "metrics": block})

    original = load_definitions(tmp_path / "experiments")["checkout"]
    record = original.to_record(published_ts=PUBLISHED_AT)
    decoded = _through_avro(record)

    assert decoded == record and ExperimentMetrics.from_json(decoded.metrics) == original.metrics
    assert Definition.from_record(decoded) == original
    assert original.metrics.definitions["aov"].denominator == MetricSide(events=["purchase"])
    assert record.definition_hash == record.digest() == original.digest()


def _v1_hash(record: ExperimentDefinition) -> str:
    """How v1 computed definition_hash: every field but published_ts and definition_hash (there was no metrics)."""
    body = record.to_avro()
    del body["published_ts"], body["definition_hash"], body["metrics"]
    body["scheme_params"] = json.loads(record.scheme_params)
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_v1_records_still_decode_keep_their_hash_and_have_no_metrics() -> None:
    record = _definition(None).to_record(published_ts=PUBLISHED_AT)
    v1_body = {name: value for name, value in record.to_avro().items() if name != "metrics"}

    raw = AvroSerde("ExperimentDefinition", version=1).encode(v1_body)
    decoded = ExperimentDefinition.from_avro(AvroSerde("ExperimentDefinition").decode(raw))

    assert decoded.metrics == "" and decoded == record
    assert decoded.definition_hash == _v1_hash(decoded) == decoded.digest()
    assert Definition.from_record(decoded).metrics == ExperimentMetrics()


def test_old_readers_skip_the_metrics() -> None:
    raw = AvroSerde("ExperimentDefinition").encode(_definition().to_record().to_avro())

    old = AvroSerde("ExperimentDefinition", version=1).decode(raw)

    assert "metrics" not in old and old["key"] == "checkout"


def test_the_digest_covers_the_metrics_but_not_their_formatting() -> None:
    plain = _definition()
    changed = MetricCatalog({**CATALOG, "bounce": _spec("bounce", direction="decrease")}, source="x")
    record = plain.to_record()
    reformatted = record.model_copy(update={"metrics": json.dumps(json.loads(record.metrics), indent=1)})

    assert _definition(catalog=changed).digest() != plain.digest()
    assert _definition({**BLOCK, "correction": "holm"}).digest() != plain.digest()
    assert _definition(None).digest() != plain.digest()
    assert reformatted.digest() == record.digest()


def test_a_record_with_a_malformed_metrics_field_is_refused() -> None:
    record = _definition().to_record().to_avro()

    with pytest.raises(ValueError, match=r"metrics\n.*must be empty or the JSON of an ExperimentMetrics block"):
        ExperimentDefinition.model_validate({**record, "metrics": '{"primary": ["x"]}'})
    with pytest.raises(ValueError, match="must be empty or the JSON of an ExperimentMetrics block"):
        ExperimentDefinition.model_validate({**record, "metrics": "not json"})


def _store(*definitions: Definition) -> DefinitionStore:
    records = [d.to_record() for d in definitions]
    return DefinitionStore({(r.key, r.revision): r for r in records})


def test_a_changed_metric_needs_a_new_experiment_revision() -> None:
    published = _definition()
    wider = MetricCatalog({**CATALOG, "bounce": _spec("bounce", numerator={"events": ["bounce", "exit"]})})

    (same_revision,) = plan_publish([_definition(catalog=wider)], _store(published))
    (bumped,) = plan_publish([_definition(catalog=wider, revision=2)], _store(published))
    (unchanged,) = plan_publish([_definition()], _store(published))

    assert same_revision.action == "refused"
    assert same_revision.problems[0].startswith("revision 1 of 'checkout' is already published with other content")
    assert same_revision.problems[0].endswith("a published revision never changes: bump the revision")
    assert (bumped.action, unchanged.action) == ("publish", "unchanged")
    assert [str(c) for c in bumped.changes] == [
        "metrics.bounce: 'r1' → 'r1' (its definition changed (numerator); the readout changes)"
    ]


def test_a_new_revision_that_only_changes_metrics_is_allowed() -> None:
    before = _definition()
    after = _definition({"primary": ["clicks_per_visitor"], "guardrails": ["bounce"], "correction": "holm"}, revision=2)

    changes = check_transition(before.to_record(), after)

    assert errors_of(changes) == [] and {c.kind for c in changes} == {"analysis"}
    assert [c.summary for c in changes] == [
        "metrics.primary: ['reserve_click'] → ['clicks_per_visitor']",
        "metrics.secondary: ['clicks_per_visitor'] → []",
        "metrics.correction: 'none' → 'holm'",
    ]


def test_the_shipped_experiments_name_the_shipped_metrics() -> None:
    shipped = load_definitions(default_definitions_dir())

    moon_mars, white_gold = shipped["moon_mars"].metrics, shipped["white_gold_btn"].metrics
    assert (moon_mars.primary, moon_mars.guardrails) == (["reserve_click"], ["bounce"])
    assert moon_mars.secondary == ["clicks_per_visitor", "revenue_per_visitor", "revenue_per_order"]
    assert (white_gold.primary, white_gold.secondary) == (
        ["gold_btn_click"],
        ["revenue_per_visitor", "orders_per_visitor"],
    )
    assert white_gold.guardrails == ["bounce"]
    catalog = load_metrics(default_definitions_dir().parent / "metrics")
    assert all(moon_mars.definitions[key] == catalog[key] for key in moon_mars.definitions)
    for definition in shipped.values():
        assert Definition.from_record(_through_avro(definition.to_record())) == definition
