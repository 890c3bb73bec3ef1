"""FULL_TRANSITIVE compatibility by Avro schema resolution, and proof that it catches breaking changes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from itertools import product
from typing import Any

import pytest

from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.evolution import check_catalog, incompatibilities, resolution_error, sample_records

NAMES = default_catalog().names()


@pytest.mark.parametrize("name", NAMES)
def test_every_pair_of_published_versions_resolves_both_ways(name: str) -> None:
    versions = default_catalog().versions(name)
    pairs = list(product(versions, repeat=2))
    assert len(pairs) == len(versions) ** 2
    for writer, reader in pairs:
        assert resolution_error(writer, reader) is None, f"v{reader.version} cannot read v{writer.version}"
    assert check_catalog(default_catalog()) == []


def _next(version: SchemaVersion, change: Callable[[dict[str, Any]], None]) -> SchemaVersion:
    schema = copy.deepcopy(dict(version.schema))
    change(schema)
    return SchemaVersion.build(version.name, version.version + 1, schema)


def _add(field: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda schema: schema["fields"].append({"doc": "new", **field})


@pytest.mark.parametrize("name", NAMES)
def test_a_new_field_with_a_default_is_compatible(name: str) -> None:
    current = default_catalog().latest(name)
    evolved = _next(current, _add({"name": "added", "type": ["null", "string"], "default": None}))
    assert incompatibilities([*default_catalog().versions(name), evolved]) == []
    SchemaCatalog([*default_catalog().versions(name), evolved])  # and the loader accepts it as a new version


@pytest.mark.parametrize("name", NAMES)
def test_a_new_field_without_a_default_is_reported(name: str) -> None:
    current = default_catalog().latest(name)
    evolved = _next(current, _add({"name": "added", "type": "string"}))
    assert incompatibilities([current, evolved]) == [
        f"{name}: v{evolved.version} cannot read v{current.version} (backward): "
        f"SchemaResolutionError: No default value for field added in io.abstream.{name}"
    ]


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(field for field in schema["fields"] if field["name"] == name)


def _set_type(name: str, new_type: Any) -> Callable[[dict[str, Any]], None]:
    return lambda schema: _field(schema, name).update(type=new_type)


def _drop_enum_default_and_add(symbol: str) -> Callable[[dict[str, Any]], None]:
    def change(schema: dict[str, Any]) -> None:
        enum = _field(schema, "reason")["type"]
        enum["symbols"].append(symbol)

    return change


def _rename(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    return lambda schema: _field(schema, old).update(name=new)


# A direction names who breaks: "backward" when the newer version cannot read the older one's records,
# "forward" when the older version cannot read the newer one's.
BREAKING = [
    ("Exposure", _set_type("revision", "string"), ["backward", "forward"]),
    ("Exposure", _set_type("revision", "long"), ["forward"]),  # int promotes to long, not back
    ("Exposure", lambda s: _field(s, "hash_seed").update(type="string", default=""), ["backward"]),
    ("Exposure", _rename("unit_id", "unit_key"), ["backward", "forward"]),
    ("Event", lambda s: s["fields"].remove(_field(s, "name")), ["forward"]),  # old readers need it
]


@pytest.mark.parametrize(("name", "change", "directions"), BREAKING)
def test_breaking_changes_are_reported_in_the_right_direction(
    name: str, change: Callable[[dict[str, Any]], None], directions: list[str]
) -> None:
    current = default_catalog().latest(name)
    problems = incompatibilities([current, _next(current, change)])
    assert [problem.split("(")[1].split(")")[0] for problem in problems] == directions


def test_enum_defaults_absorb_removed_symbols() -> None:
    current = default_catalog().latest("ExperimentDefinition")
    evolved = _next(current, lambda s: _field(s, "state")["type"]["symbols"].remove("rollout"))
    assert incompatibilities([current, evolved]) == []


def test_enum_defaults_let_old_readers_meet_new_symbols() -> None:
    current = default_catalog().latest("AssignmentFlag")
    evolved = _next(current, _drop_enum_default_and_add("late_exposure"))
    assert incompatibilities([current, evolved]) == []

    without_default = copy.deepcopy(dict(current.schema))
    del _field(without_default, "reason")["type"]["default"]
    strict = SchemaVersion.build("AssignmentFlag", 1, without_default)
    problems = incompatibilities([strict, _next(strict, _drop_enum_default_and_add("late_exposure"))])
    assert len(problems) == 1 and "late_exposure not found in reader symbol list" in problems[0]


def test_samples_take_every_union_branch_and_enum_symbol() -> None:
    flags = sample_records(default_catalog().latest("AssignmentFlag"))
    assert {flag["reason"] for flag in flags} == set(
        default_catalog().latest("AssignmentFlag").wire["fields"][7]["type"]["symbols"]
    )
    exposures = sample_records(default_catalog().latest("Exposure"))
    for field in ("hash_seed", "hash_version", "bucket_position", "bucket_index", "received_ts"):
        assert {record[field] is None for record in exposures} == {True, False}, field
