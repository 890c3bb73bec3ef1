"""Every known version of every record, loaded once from the packaged ``.avsc`` files.

Files live at ``schemas/avro/<Name>/v<N>.avsc``; a change is a new file, never an edit (see
``EVOLUTION.md``). Readers find a message's writer schema here by fingerprint.

    >>> catalog = default_catalog()
    >>> catalog.latest("Exposure").full_name
    'io.abstream.Exposure'
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, cast

from fastavro import parse_schema
from fastavro.schema import SchemaParseException

from abstream.errors import SchemaError
from schemas.fingerprint import fingerprint64, parsing_canonical_form

__all__ = ["SchemaCatalog", "SchemaVersion", "default_catalog"]

_FILE = re.compile(r"v([1-9][0-9]*)\.avsc")


@dataclass(frozen=True, slots=True, eq=False)
class SchemaVersion:
    """One record at one version, parsed once.

    ``schema`` is the file as written (docs, logical types): what a schema registry receives.
    ``wire`` is the fastavro-parsed schema without logical types: the serde writes and reads with it,
    so timestamps stay epoch milliseconds and UUIDs stay strings (the fingerprint is the same, since the
    canonical form drops logical types too).
    """

    name: str
    version: int
    full_name: str
    schema: Mapping[str, Any]
    canonical: str
    fingerprint: int
    wire: dict[str, Any]

    @classmethod
    def build(cls, name: str, version: int, schema: Mapping[str, Any]) -> SchemaVersion:
        """Check and parse ``schema`` as version ``version`` of record ``name`` (its short name)."""
        where = f"{name} v{version}"
        if schema.get("type") != "record" or not isinstance(schema.get("name"), str):
            raise SchemaError(f"{where}: the top level must be a named record")
        full_name = _full_name(schema)
        if full_name.rpartition(".")[2] != name:
            raise SchemaError(f"{where}: the file defines {full_name!r}; its folder must be named after it")
        try:
            wire = cast(dict[str, Any], parse_schema(_strip_logical_types(schema)))
        except (SchemaParseException, KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: not a valid Avro schema: {exc}") from exc
        canonical = parsing_canonical_form(schema)
        return cls(name, version, full_name, schema, canonical, fingerprint64(schema), wire)

    def text(self) -> str:
        """The schema as pretty JSON."""
        return json.dumps(self.schema, indent=2, ensure_ascii=False)

    def __repr__(self) -> str:
        return f"SchemaVersion({self.full_name} v{self.version}, fingerprint={self.fingerprint:#018x})"


class SchemaCatalog:
    """Versions by record name and by fingerprint; ``names`` are short (``Exposure``) or full."""

    def __init__(self, versions: Iterable[SchemaVersion]) -> None:
        by_name: dict[str, list[SchemaVersion]] = {}
        for item in versions:
            by_name.setdefault(item.name, []).append(item)
        self._by_name = {name: _ordered(name, items) for name, items in sorted(by_name.items())}
        self._full_names = {items[0].full_name: name for name, items in self._by_name.items()}
        self._by_fingerprint = _index_fingerprints(self)

    @classmethod
    def from_package(cls, package: str = "schemas", folder: str = "avro") -> SchemaCatalog:
        """Load ``<package>/<folder>/<Name>/v<N>.avsc``; works from a wheel as well as a checkout."""
        root = files(package).joinpath(folder)
        return cls(
            _load(entry.name, item)
            for entry in root.iterdir()
            if entry.is_dir() and not entry.name.startswith(("_", "."))
            for item in entry.iterdir()
            if item.name.endswith(".avsc")
        )

    def names(self) -> tuple[str, ...]:
        """Short record names, sorted."""
        return tuple(self._by_name)

    def versions(self, name: str) -> tuple[SchemaVersion, ...]:
        """Every version of a record, oldest first."""
        return self._by_name[self._short(name)]

    def latest(self, name: str) -> SchemaVersion:
        """The newest version: what writers use and readers resolve into."""
        return self.versions(name)[-1]

    def get(self, name: str, version: int | None = None) -> SchemaVersion:
        """One version of a record; the latest when ``version`` is None."""
        versions = self.versions(name)
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise SchemaError(f"{name} has versions 1 to {len(versions)}, not {version}")
        return versions[version - 1]

    def by_fingerprint(self, fingerprint: int) -> SchemaVersion | None:
        """The version whose canonical form has this CRC-64-AVRO fingerprint, if any."""
        return self._by_fingerprint.get(fingerprint)

    def __iter__(self) -> Iterator[SchemaVersion]:
        return (item for items in self._by_name.values() for item in items)

    def _short(self, name: str) -> str:
        if name in self._by_name:
            return name
        if name in self._full_names:
            return self._full_names[name]
        raise SchemaError(f"unknown record {name!r}; known records: {', '.join(self._by_name)}")


@functools.cache
def default_catalog() -> SchemaCatalog:
    """The catalog of the packaged ``.avsc`` files, loaded on first use."""
    return SchemaCatalog.from_package()


def _load(name: str, item: Traversable) -> SchemaVersion:
    match = _FILE.fullmatch(item.name)
    if match is None:
        raise SchemaError(f"{name}/{item.name}: schema files are named v1.avsc, v2.avsc, ...")
    try:
        schema = json.loads(item.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SchemaError(f"{name}/{item.name}: not valid JSON: {exc}") from exc
    return SchemaVersion.build(name, int(match.group(1)), schema)


def _ordered(name: str, items: list[SchemaVersion]) -> tuple[SchemaVersion, ...]:
    items.sort(key=lambda item: item.version)
    numbers = [item.version for item in items]
    if numbers != list(range(1, len(items) + 1)):
        raise SchemaError(f"{name}: versions must be 1, 2, ... without gaps or repeats, found {numbers}")
    if len({item.full_name for item in items}) != 1:
        raise SchemaError(f"{name}: every version must keep the record's full name")
    return tuple(items)


def _index_fingerprints(catalog: SchemaCatalog) -> dict[int, SchemaVersion]:
    index: dict[int, SchemaVersion] = {}
    for item in catalog:
        clash = index.setdefault(item.fingerprint, item)
        if clash is not item:
            raise SchemaError(
                f"{item.name} v{item.version} has the same canonical form as {clash.name} v{clash.version}; "
                "a new version must change the record's shape (docs alone are not a version)"
            )
    return index


def _full_name(schema: Mapping[str, Any]) -> str:
    name: str = schema["name"]
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _strip_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_logical_types(branch) for branch in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {key: value for key, value in schema.items() if key != "logicalType"}
    if isinstance(out.get("type"), list | Mapping):
        out["type"] = _strip_logical_types(out["type"])
    if "fields" in out:
        out["fields"] = [{**field, "type": _strip_logical_types(field["type"])} for field in out["fields"]]
    for key in ("items", "values"):
        if key in out:
            out[key] = _strip_logical_types(out[key])
    return out
