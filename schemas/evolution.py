"""FULL_TRANSITIVE compatibility, checked by doing what readers do: Avro schema resolution.

For every ordered pair of versions of a record, records written with one are read with the other as
reader schema. The sample records take every union branch and every enum symbol at least once, so a
removed branch or symbol, a changed type or a new field without a default shows up as a failed read.

    >>> incompatibilities(default_catalog().versions("Exposure"))
    []
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from io import BytesIO
from itertools import permutations
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.catalog import SchemaCatalog, SchemaVersion

__all__ = ["check_catalog", "incompatibilities", "resolution_error", "sample_records"]

_PRIMITIVE_SAMPLES: Mapping[str, Any] = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 2**40,
    "float": 1.5,
    "double": 0.25,
    "bytes": b"\x00\xff",
    "string": "s",
}


def sample_records(version: SchemaVersion) -> list[dict[str, Any]]:
    """Records of ``version`` that together take every union branch and enum symbol.

    Recursive schemas are not supported (the contract has none).
    """
    named = version.wire["__named_schemas"]
    count = max(_choices(version.wire, named, set()), default=1)
    return [_sample(version.wire, index, named) for index in range(count)]


def resolution_error(writer: SchemaVersion, reader: SchemaVersion) -> str | None:
    """Why records written with ``writer`` cannot be read with ``reader``; None if they all can."""
    for record in sample_records(writer):
        buf = BytesIO()
        schemaless_writer(buf, writer.wire, record)
        buf.seek(0)
        try:
            schemaless_reader(buf, writer.wire, reader.wire)
        except Exception as exc:  # fastavro reports resolution failures with several exception types
            return f"{type(exc).__name__}: {exc}"
    return None


def incompatibilities(versions: Sequence[SchemaVersion]) -> list[str]:
    """One line per ordered pair of versions that fails to resolve, in either direction (FULL_TRANSITIVE)."""
    problems = []
    for writer, reader in permutations(versions, 2):
        error = resolution_error(writer, reader)
        if error is not None:
            problems.append(
                f"{writer.name}: v{reader.version} cannot read v{writer.version} "
                f"({'backward' if reader.version > writer.version else 'forward'}): {error}"
            )
    return problems


def check_catalog(catalog: SchemaCatalog) -> list[str]:
    """``incompatibilities`` for every record of the catalog."""
    return [problem for name in catalog.names() for problem in incompatibilities(catalog.versions(name))]


def _choices(schema: Any, named: Mapping[str, Any], seen: set[str]) -> Iterable[int]:
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            yield from _choices(named[schema], named, seen | {schema})
        return
    if isinstance(schema, list):
        yield len(schema)
        for branch in schema:
            yield from _choices(branch, named, seen)
        return
    kind = schema["type"]
    if kind == "enum":
        yield len(schema["symbols"])
    elif kind == "record":
        for field in schema["fields"]:
            yield from _choices(field["type"], named, seen | {schema["name"]})
    elif kind in ("array", "map"):
        yield from _choices(schema["items" if kind == "array" else "values"], named, seen)


def _sample(schema: Any, index: int, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str):
        return _PRIMITIVE_SAMPLES[schema] if schema in _PRIMITIVE_SAMPLES else _sample(named[schema], index, named)
    if isinstance(schema, list):
        return _sample(schema[index % len(schema)], index, named)
    kind = schema["type"]
    if kind == "record":
        return {field["name"]: _sample(field["type"], index, named) for field in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][index % len(schema["symbols"])]
    if kind == "array":
        return [_sample(schema["items"], index, named)]
    if kind == "map":
        return {"k": _sample(schema["values"], index, named)}
    if kind == "fixed":
        return bytes(schema["size"])
    return _sample(kind, index, named)
