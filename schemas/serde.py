"""Bytes on the wire: Avro single-object encoding by default, Confluent Schema Registry framing on request.

Single-object encoding needs no server: ``C3 01``, the little-endian CRC-64-AVRO fingerprint of the
writer schema's canonical form, then the Avro binary body. Readers find the writer schema among all
known versions by that fingerprint (or by registry id) and resolve it into their own version, so a
reader accepts every version ever published and both framings, told apart by the first byte.

Records are plain dicts in Avro form: timestamps are epoch milliseconds, UUIDs are strings
(``schemas.models`` converts to and from Python types at the edges).

    >>> serde = AvroSerde("Exposure")
    >>> raw = serde.encode(exposure.to_avro())
    >>> serde.decode(raw)["variant"]
    'B'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from io import BytesIO
from typing import Any, Literal, NamedTuple, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from abstream.errors import ConfigError, DecodeError, EncodeError, UnknownSchemaError
from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.registry import ConfluentRegistry

__all__ = ["AvroSerde", "Decoded", "Framing", "decode_any", "single_object_header"]

Framing = Literal["single-object", "confluent"]

_SINGLE_OBJECT = 0xC3
_SINGLE_OBJECT_HEADER = 10
_CONFLUENT = 0x00
_CONFLUENT_HEADER = 5
# fastavro reports a negative string or bytes length as a short read: "Expected -3 bytes, read 172".
_NEGATIVE_LENGTH = re.compile(r"Expected -\d+ bytes")
_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


class Decoded(NamedTuple):
    """A decoded message: the version it was written with and the record in the reader's version."""

    writer: SchemaVersion
    record: dict[str, Any]


def single_object_header(version: SchemaVersion) -> bytes:
    """``C3 01`` and the schema's fingerprint, little-endian: the prefix of every single-object message."""
    return bytes((_SINGLE_OBJECT, 0x01)) + version.fingerprint.to_bytes(8, "little")


class AvroSerde:
    """Encodes one record type with one version; decodes any known version of it into that version.

    ``validate=True`` checks every record fully before writing (ranges, int versus float, ...) at
    roughly five times the cost of encoding; leave it off where pydantic models already validated.
    Field names are always checked, so a misspelt optional field is an error, not a silent default.
    """

    __slots__ = ("_catalog", "_fields", "_header", "_registry", "_validate", "_version")

    def __init__(
        self,
        record: str,
        *,
        version: int | None = None,
        framing: Framing = "single-object",
        registry: ConfluentRegistry | None = None,
        catalog: SchemaCatalog | None = None,
        validate: bool = False,
    ) -> None:
        if framing not in ("single-object", "confluent"):
            raise ConfigError(f"framing must be 'single-object' or 'confluent', not {framing!r}")
        if framing == "confluent" and registry is None:
            raise ConfigError("framing='confluent' needs registry=ConfluentRegistry.connect(url)")
        self._catalog = catalog or default_catalog()
        self._version = self._catalog.get(record, version)
        self._registry = registry
        self._header = single_object_header(self._version) if framing == "single-object" else None
        self._fields = frozenset(field["name"] for field in self._version.wire["fields"])
        self._validate = validate

    @property
    def version(self) -> SchemaVersion:
        """The version this serde writes and reads into."""
        return self._version

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The framed message for ``record``; EncodeError names the field that does not fit."""
        if not self._fields.issuperset(record):
            raise self._unknown_fields(record)
        if self._validate:
            _check(self._version, record)
        buf = BytesIO()
        buf.write(self._header or self._registry_header())
        try:
            schemaless_writer(buf, self._version.wire, record)
        except _WRITE_ERRORS as exc:
            _check(self._version, record)
            raise EncodeError(f"{self._version.name}: {exc}") from exc
        return buf.getvalue()

    def decode(
        self, raw: bytes, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        """The record in this serde's version; DecodeError (with ``raw`` and the given origin) if not."""
        return self.decode_message(raw, topic=topic, partition=partition, offset=offset).record

    def decode_message(
        self, raw: bytes, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> Decoded:
        """Like ``decode``, and also says which version wrote the message."""
        try:
            writer, start = _writer_of(raw, self._catalog, self._registry)
            if writer.full_name != self._version.full_name:
                raise DecodeError(
                    f"message holds {writer.full_name} v{writer.version}, expected {self._version.full_name}",
                    raw=raw,
                    kind="wrong_record",
                )
            return Decoded(writer, _read(raw, start, writer, self._version))
        except DecodeError as exc:
            exc.topic, exc.partition, exc.offset = topic, partition, offset
            raise

    def _registry_header(self) -> bytes:
        assert self._registry is not None  # guaranteed by __init__ for the confluent framing
        schema_id = self._registry.schema_id(self._version)
        self._header = bytes((_CONFLUENT,)) + schema_id.to_bytes(4, "big")
        return self._header

    def _unknown_fields(self, record: Mapping[str, Any]) -> EncodeError:
        unknown = sorted(set(record) - self._fields)
        return EncodeError(
            f"{self._version.name}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(sorted(self._fields))}",
            field=unknown[0],
        )


def decode_any(
    raw: bytes, *, catalog: SchemaCatalog | None = None, registry: ConfluentRegistry | None = None
) -> Decoded:
    """Decode a message of any known record, read into the latest version of that record."""
    catalog = catalog or default_catalog()
    writer, start = _writer_of(raw, catalog, registry)
    return Decoded(writer, _read(raw, start, writer, catalog.latest(writer.name)))


def _writer_of(raw: bytes, catalog: SchemaCatalog, registry: ConfluentRegistry | None) -> tuple[SchemaVersion, int]:
    if not raw:
        raise DecodeError("empty message", raw=raw, kind="truncated")
    if raw[0] == _SINGLE_OBJECT:
        return _single_object_writer(raw, catalog), _SINGLE_OBJECT_HEADER
    if raw[0] == _CONFLUENT:
        return _registry_writer(raw, registry), _CONFLUENT_HEADER
    hint = " (it looks like JSON)" if raw[:1] in (b"{", b"[") else ""
    raise DecodeError(
        f"first byte {raw[0]:#04x} is neither 0xc3 (Avro single-object) nor 0x00 (Confluent){hint}",
        raw=raw,
        kind="bad_magic",
    )


def _single_object_writer(raw: bytes, catalog: SchemaCatalog) -> SchemaVersion:
    if len(raw) >= 2 and raw[1] != 0x01:
        raise DecodeError(f"single-object marker is c3 {raw[1]:02x}, expected c3 01", raw=raw, kind="bad_magic")
    if len(raw) < _SINGLE_OBJECT_HEADER:
        raise DecodeError(
            f"{len(raw)} bytes is shorter than the 10-byte single-object header", raw=raw, kind="truncated"
        )
    fingerprint = int.from_bytes(raw[2:_SINGLE_OBJECT_HEADER], "little")
    writer = catalog.by_fingerprint(fingerprint)
    if writer is None:
        raise DecodeError(
            f"schema fingerprint {fingerprint:#018x} is not one of the known schema versions "
            f"({', '.join(f'{v.name} v{v.version}' for v in catalog)}); written by a newer abstream?",
            raw=raw,
            kind="unknown_fingerprint",
        )
    return writer


def _registry_writer(raw: bytes, registry: ConfluentRegistry | None) -> SchemaVersion:
    if len(raw) < _CONFLUENT_HEADER:
        raise DecodeError(f"{len(raw)} bytes is shorter than the 5-byte Confluent header", raw=raw, kind="truncated")
    schema_id = int.from_bytes(raw[1:_CONFLUENT_HEADER], "big")
    if registry is None:
        raise DecodeError(
            f"message uses the Confluent framing (schema id {schema_id}) but no schema registry is set up",
            raw=raw,
            kind="no_registry",
        )
    try:
        return registry.version(schema_id)
    except UnknownSchemaError as exc:
        raise DecodeError(str(exc), raw=raw, kind=exc.kind) from exc


def _read(raw: bytes, start: int, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
    buf = BytesIO(raw)
    buf.seek(start)
    try:
        record = schemaless_reader(buf, writer.wire, None if writer is reader else reader.wire)
    except EOFError as exc:
        if not _NEGATIVE_LENGTH.search(str(exc)):
            raise DecodeError(
                f"{writer.name} v{writer.version} body ends early ({len(raw)} bytes in all)",
                raw=raw,
                kind="truncated",
            ) from exc
        raise DecodeError(
            f"body does not match {writer.name} v{writer.version}: a negative length",
            raw=raw,
            kind="schema_mismatch",
        ) from exc
    # Corrupt bytes surface as many exception types inside fastavro; all of them mean the same here.
    except Exception as exc:
        raise DecodeError(
            f"body does not match {writer.name} v{writer.version}: {type(exc).__name__}: {exc}",
            raw=raw,
            kind="schema_mismatch",
        ) from exc
    left = len(raw) - buf.tell()
    if left:
        raise DecodeError(
            f"{left} byte(s) left over after the {writer.name} v{writer.version} record",
            raw=raw,
            kind="trailing_bytes",
        )
    return cast(dict[str, Any], record)


def _check(version: SchemaVersion, record: Mapping[str, Any]) -> None:
    try:
        validate(record, version.wire, raise_errors=True)
    except ValidationError as exc:
        problem = exc.errors[0]
        field = _field_path(version, problem.field)
        expected = " or ".join(_type_name(e.schema) for e in exc.errors if e.field == problem.field)
        shown = "null or missing" if problem.datum is None else f"{problem.datum!r} ({type(problem.datum).__name__})"
        raise EncodeError(f"{version.name}.{field}: {shown}, expected {expected}", field=field) from exc


def _field_path(version: SchemaVersion, path: str) -> str:
    """fastavro names a nested field by its record type (io.abstream.Source.sdk); users think source.sdk."""
    record, _, field = path.rpartition(".")
    prefix = _record_paths(version.wire, "").get(record)
    if prefix is None:
        return path.removeprefix(version.full_name.rpartition(".")[0] + ".")
    return f"{prefix}.{field}" if prefix else field


def _record_paths(schema: Any, path: str) -> dict[str, str]:
    if isinstance(schema, list):
        return {name: where for branch in schema for name, where in _record_paths(branch, path).items()}
    if not isinstance(schema, Mapping):
        return {}
    if schema.get("type") == "record":
        paths = {schema["name"]: path}
        for field in schema["fields"]:
            inner = f"{path}.{field['name']}" if path else field["name"]
            paths.update(_record_paths(field["type"], inner))
        return paths
    return _record_paths(schema.get("items") or schema.get("values"), f"{path}[]")


def _type_name(schema: Any) -> str:
    if isinstance(schema, Mapping):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)
