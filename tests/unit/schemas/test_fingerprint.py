"""Parsing Canonical Form and CRC-64-AVRO against the Avro project's vectors, Java output and fastavro."""

from __future__ import annotations

import json
from typing import Any

import fastavro.schema
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.fingerprint import crc64_avro, fingerprint64, parsing_canonical_form
from schemas.serde import AvroSerde

# From apache/avro share/test/data/schema-tests.txt (fingerprints cross-checked there by the Java
# implementation, printed as signed 64-bit integers). Cases without a fingerprint have None.
AVRO_VECTORS: list[tuple[str, str, int | None]] = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', None),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"float"', '"float"', 5583340709985441680),
    ('"double"', '"double"', -8181574048448539266),
    ('"bytes"', '"bytes"', 5746618253357095269),
    ('"string"', '"string"', -8142146995180207161),
    ('{"type":"string"}', '"string"', None),
    ("[  ]", "[]", -1241056759729112623),
    ('[ "int"  ]', '["int"]', -5232228896498058493),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    (
        '{"fields":[], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
        '{"name":"a.b.foo","type":"record","fields":[]}',
        -4616218487480524110,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        '{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
    (
        '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
        '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    (
        '{"type":"enum", "name":"foo", "symbols":["A1"]}',
        '{"name":"foo","type":"enum","symbols":["A1"]}',
        -6342190197741309591,
    ),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    (
        '{"name":"foo","type":"fixed","size":15}',
        '{"name":"foo","type":"fixed","size":15}',
        1756455273707447556,
    ),
    (
        '{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
        '{"name":"x.y.z.foo","type":"fixed","size":32}',
        -3064184465700546786,
    ),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    (
        '{"name":"PigValue","type":"record", "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
        '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]

# Single-object messages written by Java (org.apache.avro SchemaNormalization, via the avro-kotlin
# test fixtures): record FooString {str: string} holding "bar", in two namespaces.
JAVA_SINGLE_OBJECT = [
    ("io.toolisticon.avro.kotlin._test", "C3 01 1D 6C 12 78 03 3B 7C A0 06 62 61 72"),
    ("io.toolisticon.kotlin.avro._test", "C3 01 68 2F CD 81 41 03 69 8A 06 62 61 72"),
]


def _unsigned(signed: int) -> int:
    return signed & (2**64 - 1)


@pytest.mark.parametrize(("text", "canonical", "fingerprint"), AVRO_VECTORS)
def test_avro_project_vectors(text: str, canonical: str, fingerprint: int | None) -> None:
    schema = json.loads(text)
    assert parsing_canonical_form(schema) == canonical
    if fingerprint is not None:
        assert fingerprint64(schema) == _unsigned(fingerprint)


@pytest.mark.parametrize(("namespace", "message"), JAVA_SINGLE_OBJECT)
def test_single_object_bytes_match_java(namespace: str, message: str) -> None:
    schema = {
        "type": "record",
        "name": f"{namespace}.FooString",
        "fields": [{"name": "str", "type": "string"}],
    }
    serde = AvroSerde("FooString", catalog=SchemaCatalog([SchemaVersion.build("FooString", 1, schema)]))
    expected = bytes.fromhex(message.replace(" ", ""))
    assert serde.encode({"str": "bar"}) == expected
    assert serde.decode(expected) == {"str": "bar"}


@pytest.mark.parametrize(
    ("schema", "canonical"),
    [
        ({"type": "string", "logicalType": "uuid"}, '"string"'),
        ({"type": "long", "logicalType": "timestamp-millis"}, '"long"'),
        ({"type": "int", "logicalType": "date"}, '"int"'),
        (["null", {"type": "long", "logicalType": "timestamp-millis"}], '["null","long"]'),
        (
            {"type": "fixed", "name": "d", "size": 8, "logicalType": "decimal", "precision": 10, "scale": 2},
            '{"name":"d","type":"fixed","size":8}',
        ),
    ],
)
def test_logical_types_are_stripped_like_the_java_reference(schema: Any, canonical: str) -> None:
    assert parsing_canonical_form(schema) == canonical


def test_named_types_are_written_once_then_referenced_by_full_name() -> None:
    inner = {"type": "record", "name": "In", "fields": [{"name": "a", "type": "int"}]}
    schema = {
        "type": "record",
        "name": "Out",
        "namespace": "n",
        "fields": [{"name": "x", "type": inner}, {"name": "y", "type": "In"}, {"name": "z", "type": "n.In"}],
    }
    assert parsing_canonical_form(schema) == (
        '{"name":"n.Out","type":"record","fields":[{"name":"x","type":{"name":"n.In","type":"record",'
        '"fields":[{"name":"a","type":"int"}]}},{"name":"y","type":"n.In"},{"name":"z","type":"n.In"}]}'
    )


def test_explicit_empty_namespace_drops_the_enclosing_one() -> None:
    schema = {
        "type": "record",
        "name": "Out",
        "namespace": "n",
        "fields": [{"name": "e", "type": {"type": "enum", "name": "E", "namespace": "", "symbols": ["A"]}}],
    }
    assert '"name":"E"' in parsing_canonical_form(schema)


def test_crc64_avro_of_nothing_is_the_empty_constant() -> None:
    # The spec's algorithm starts from EMPTY and folds each byte in; no bytes leave it unchanged.
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def _fastavro_fingerprint(schema: Any) -> int:
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    # fastavro prints the 8 fingerprint bytes in little-endian order, as single-object encoding writes them.
    return int.from_bytes(bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")), "little")


@pytest.mark.parametrize("version", list(default_catalog()), ids=repr)
def test_our_schemas_agree_with_fastavro(version: SchemaVersion) -> None:
    assert version.canonical == fastavro.schema.to_parsing_canonical_form(dict(version.schema))
    assert version.fingerprint == _fastavro_fingerprint(dict(version.schema))
    assert "logicalType" not in version.canonical and '"doc"' not in version.canonical


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
_namespaces = st.one_of(st.none(), st.lists(_names, min_size=1, max_size=3).map(".".join))
_leaves = st.one_of(
    st.sampled_from(["null", "boolean", "int", "long", "float", "double", "bytes", "string"]),
    st.sampled_from(["string", "long", "int"]).map(lambda t: {"type": t, "doc": "noise", "logicalType": "x"}),
)


def _named(kind: str, children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    base = st.fixed_dictionaries({"name": _names}, optional={"namespace": _namespaces, "doc": st.just("d")})
    if kind == "enum":
        return base.map(lambda d: {**d, "type": "enum", "symbols": ["A", "B"]})
    fields = st.lists(children, min_size=0, max_size=3).map(
        lambda types: [{"name": f"f{i}", "type": t, "doc": "x", "order": "ascending"} for i, t in enumerate(types)]
    )
    return st.tuples(base, fields).map(lambda pair: {**pair[0], "type": "record", "fields": pair[1]})


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda t: {"type": "array", "items": t}, children),
        st.builds(lambda t: {"type": "map", "values": t}, children),
        _named("record", children),
        _named("enum", children),
    )


_schemas = st.recursive(_leaves, _extend, max_leaves=8)


@given(_schemas)
def test_random_schemas_agree_with_fastavro(schema: Any) -> None:
    try:
        fastavro.schema.parse_schema(schema)
    except Exception:  # random names can redefine a type; only schemas Avro accepts have a canonical form
        assume(False)
    assert parsing_canonical_form(schema) == fastavro.schema.to_parsing_canonical_form(schema)
    assert fingerprint64(schema) == _fastavro_fingerprint(schema)
