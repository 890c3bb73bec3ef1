"""Avro Parsing Canonical Form and its CRC-64-AVRO fingerprint, written out from the Avro specification.

The fingerprint travels in every single-object-encoded message, so it must never drift. We own this
code rather than lean on a library whose canonical form could change (keeping ``logicalType``, say):
like the Java reference, it keeps only ``name``, ``type``, ``fields``, ``symbols``, ``items``,
``values`` and ``size``, so ``{"type": "string", "logicalType": "uuid"}`` becomes ``"string"``.

    >>> parsing_canonical_form({"type": "record", "name": "A", "namespace": "x", "fields": []})
    '{"name":"x.A","type":"record","fields":[]}'
"""

from __future__ import annotations

import json
from typing import Any

from abstream.errors import SchemaError

__all__ = ["crc64_avro", "fingerprint64", "parsing_canonical_form"]

_EMPTY = 0xC15D213AA4D7A795
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "enum", "fixed"})


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _crc_table()


def crc64_avro(data: bytes) -> int:
    """The spec's CRC-64-AVRO (Rabin) of ``data``, as an unsigned 64-bit integer."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def fingerprint64(schema: Any) -> int:
    """Unsigned CRC-64-AVRO of the schema's Parsing Canonical Form (written little-endian on the wire)."""
    return crc64_avro(parsing_canonical_form(schema).encode("utf-8"))


def parsing_canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of a schema given as parsed JSON (dict, list or str)."""
    return _canonical(schema, namespace="", seen=set())


def _canonical(schema: Any, *, namespace: str, seen: set[str]) -> str:
    if isinstance(schema, str):
        return _compact(_full_name(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(_canonical(branch, namespace=namespace, seen=seen) for branch in schema) + "]"
    if not isinstance(schema, dict) or "type" not in schema:
        raise SchemaError(f"not an Avro schema: {schema!r}")
    kind = schema["type"]
    if kind in _NAMED:
        return _named(schema, namespace=namespace, seen=seen)
    if kind == "array":
        return '{"type":"array","items":' + _canonical(schema["items"], namespace=namespace, seen=seen) + "}"
    if kind == "map":
        return '{"type":"map","values":' + _canonical(schema["values"], namespace=namespace, seen=seen) + "}"
    # A primitive with attributes ({"type": "long", "logicalType": ...}) or a nested type object.
    return _canonical(kind, namespace=namespace, seen=seen)


def _named(schema: dict[str, Any], *, namespace: str, seen: set[str]) -> str:
    name = schema["name"]
    if "." not in name and "namespace" in schema:
        namespace = schema["namespace"] or ""
    full = _full_name(name, namespace)
    if full in seen:
        return _compact(full)
    seen.add(full)
    inner = full.rpartition(".")[0]
    kind = schema["type"]
    head = '{"name":' + _compact(full) + ',"type":' + _compact(kind)
    if kind == "enum":
        return head + ',"symbols":' + _compact(schema["symbols"]) + "}"
    if kind == "fixed":
        return head + ',"size":' + str(int(schema["size"])) + "}"
    fields = ",".join(
        '{"name":' + _compact(field["name"]) + ',"type":' + _canonical(field["type"], namespace=inner, seen=seen) + "}"
        for field in schema["fields"]
    )
    return head + ',"fields":[' + fields + "]}"


def _full_name(name: str, namespace: str) -> str:
    if name in _PRIMITIVES or "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
