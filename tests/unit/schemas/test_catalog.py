"""The packaged .avsc files follow the contract's conventions, and the loader refuses broken layouts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from abstream.errors import SchemaError
from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.fingerprint import parsing_canonical_form

# Published versions are frozen: their fingerprint is on the wire forever. Adding vN+1 adds a line
# here; a change to a published line means someone edited an old file.
PUBLISHED = {
    ("AssignmentFlag", 1): 0xAE625FCED4641E13,
    ("AssignmentFlag", 2): 0x5A27913B96AD4A8F,
    ("AttributedConversion", 1): 0xFE544FF1D02165F0,
    ("DeadLetter", 1): 0xD8B8493776431070,
    ("Event", 1): 0xF37AE053CDE6E916,
    ("ExperimentDefinition", 1): 0xF6FC7A7B9FD02D2B,
    ("ExperimentDefinition", 2): 0x79F027D2E4DA13B6,
    ("Exposure", 1): 0x2FA3A94B0EDF335D,
    ("FirstExposure", 1): 0x5C95EF795F9D23A0,
    ("UnattributedEvent", 1): 0xC0FE5B67BEBC0A8F,
}


def test_published_versions_never_change() -> None:
    assert {(v.name, v.version): v.fingerprint for v in default_catalog()} == PUBLISHED


def _named_types(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, list):
        for branch in schema:
            yield from _named_types(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            yield schema
        for field in schema.get("fields", []):
            yield from _named_types(field["type"])
        yield from _named_types(schema.get("items"))
        yield from _named_types(schema.get("values"))
        if isinstance(schema.get("type"), dict | list):
            yield from _named_types(schema["type"])


@pytest.mark.parametrize("version", list(default_catalog()), ids=repr)
def test_every_record_and_field_is_documented_in_the_namespace(version: SchemaVersion) -> None:
    assert version.full_name == f"io.abstream.{version.name}"
    for named in _named_types(dict(version.schema)):
        assert named.get("doc"), f"{named['name']} has no doc"
        for field in named.get("fields", []):
            assert field.get("doc"), f"{named['name']}.{field['name']} has no doc"


@pytest.mark.parametrize("version", list(default_catalog()), ids=repr)
def test_nullable_fields_default_to_null(version: SchemaVersion) -> None:
    for named in _named_types(dict(version.schema)):
        for field in named.get("fields", []):
            if isinstance(field["type"], list):
                assert field["type"][0] == "null" and field.get("default", "absent") is None, field["name"]


def test_a_named_type_means_the_same_in_every_file() -> None:
    """Across the latest versions: an enum grows in a new version of its record (rule 6), older ones keep theirs."""
    seen: dict[str, tuple[str, str]] = {}
    catalog = default_catalog()
    for version in (catalog.latest(name) for name in sorted({v.name for v in catalog})):
        top = dict(version.schema)
        for named in _named_types(top):
            if named is top:  # the record itself changes between its versions
                continue
            canonical = parsing_canonical_form({**named, "namespace": "io.abstream"})
            first = seen.setdefault(named["name"], (version.name, canonical))
            assert first[1] == canonical, f"{named['name']} differs between {first[0]} and {version.name}"
    assert {"Source", "Variant", "FlagReason", "ExperimentState", "DedupeMode", "UnattributedReason"} <= seen.keys()


@pytest.mark.parametrize(
    ("derived", "base"),
    [("FirstExposure", "Exposure"), ("AttributedConversion", "Event"), ("UnattributedEvent", "Event")],
)
def test_derived_records_carry_their_base_fields_unchanged(derived: str, base: str) -> None:
    catalog = default_catalog()
    derived_fields = catalog.latest(derived).schema["fields"]
    base_fields = catalog.latest(base).schema["fields"]
    assert derived_fields[: len(base_fields)] == base_fields


def test_lookup_by_short_or_full_name() -> None:
    catalog = default_catalog()
    assert catalog.get("io.abstream.Exposure") is catalog.latest("Exposure") is catalog.get("Exposure", 1)
    assert catalog.by_fingerprint(catalog.latest("Event").fingerprint) is catalog.latest("Event")
    assert catalog.by_fingerprint(0) is None


def test_unknown_names_and_versions_are_explained() -> None:
    with pytest.raises(SchemaError, match=r"unknown record 'Exposures'; known records: .*Exposure"):
        default_catalog().get("Exposures")
    with pytest.raises(SchemaError, match="Exposure has versions 1 to 1, not 2"):
        default_catalog().get("Exposure", 2)


RECORD = {"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "a", "type": "int"}]}


def _package(root: Path, files: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"fakecontract_{uuid4().hex}"  # a fresh package each time: imported packages are cached
    package = root / name
    for path, content in files.items():
        target = package / "avro" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content))
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(root))
    return name


def _with_field(name: str) -> dict[str, Any]:
    return {**RECORD, "fields": [*RECORD["fields"], {"name": name, "type": "string", "default": ""}]}


def test_loads_every_version_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path, {"Thing/v2.avsc": _with_field("b"), "Thing/v1.avsc": RECORD}, monkeypatch)
    catalog = SchemaCatalog.from_package(package)
    assert [v.version for v in catalog.versions("Thing")] == [1, 2]
    assert catalog.latest("t.Thing").wire["fields"][1]["name"] == "b"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"Thing/one.avsc": RECORD}, "named v1.avsc, v2.avsc"),
        (
            {"Thing/v1.avsc": RECORD, "Thing/v3.avsc": _with_field("b")},
            r"without gaps or repeats, found \[1, 3\]",
        ),
        ({"Other/v1.avsc": RECORD}, "defines 't.Thing'; its folder must be named after it"),
        ({"Thing/v1.avsc": "{not json"}, "not valid JSON"),
        ({"Thing/v1.avsc": {**RECORD, "fields": [{"name": "a", "type": "nope"}]}}, "not a valid Avro schema"),
        ({"Thing/v1.avsc": RECORD, "Thing/v2.avsc": {**RECORD, "doc": "only docs"}}, "same canonical form"),
        (
            {"Thing/v1.avsc": RECORD, "Thing/v2.avsc": {**RECORD, "namespace": "u"}},
            "keep the record's full name",
        ),
        ({"Thing/v1.avsc": {"type": "enum", "name": "Thing", "symbols": ["A"]}}, "must be a named record"),
    ],
)
def test_broken_layouts_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, Any], message: str
) -> None:
    package = _package(tmp_path, files, monkeypatch)
    with pytest.raises(SchemaError, match=message):
        SchemaCatalog.from_package(package)
