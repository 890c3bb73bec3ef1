"""The record contract, one check per record type, derived from the pydantic models of :mod:`schemas.models`.

Every edge applies it: the logger and the collector before a record leaves the app, the stream jobs and
the sink on what they read. A check returns None or a :class:`Violation`, the field path and the rule
it breaks, e.g. ``sampling_rate: must be > 0 and <= 1 (got 5.0)``.

The models are the only definition. A full model validation costs ~4-5 µs a record (it builds the model:
datetimes, UUIDs), a sixth of the jobs' own work, so each check first runs a fast path: the model's own
pydantic-core schema in wire form (strict typed dicts instead of models, epoch milliseconds for
timestamps, UUIDs as canonical strings), validated in Rust in 1-2.5 µs. It accepts a subset of what the model
accepts; whatever it does not accept (bytes where a string is allowed, a missing field with a default) is
decided and diagnosed by the model itself, so the verdict is always the model's. A differential test
(hypothesis) checks that the fast path never accepts what the model refuses.

    >>> contract("Exposure").check({**exposure, "sampling_rate": 5.0})
    Violation(record='Exposure', field='sampling_rate', rule='must be > 0 and <= 1', value=5.0, also=())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, SchemaSerializer, SchemaValidator

from schemas.models import MODELS, AvroModel, Timestamp

__all__ = ["CONTRACTS", "TIMESTAMP_MILLIS", "Contract", "Violation", "contract", "violations"]

Check = Callable[[Any], bool]
Schema = Mapping[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
# Epoch milliseconds a Timestamp turns into a datetime: datetime's own range.
_MILLIS_MIN = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MILLISECOND
_MILLIS_MAX = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MILLISECOND
_TIMESTAMP = TypeAdapter(Timestamp).core_schema
TIMESTAMP_MILLIS = range(_MILLIS_MIN, _MILLIS_MAX + 1)
"""The epoch milliseconds a Timestamp field takes (the years 1 to 9999)."""
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
_BOUND_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
_SHOWN = 80
# Model config keys that change nothing a fast check accepts (serialisation, JSON-only, names, extras:
# the fast path needs exactly the model's fields anyway).
_HARMLESS_CONFIG = frozenset(
    {"title", "extra_fields_behavior", "val_json_bytes"}
    | {"ser_json_bytes", "ser_json_timedelta", "ser_json_inf_nan", "ser_json_temporal"}
)


@dataclass(frozen=True, slots=True)
class Violation:
    """The first field of a record that breaks the contract, the rule it breaks, and the value it had.

    ``field`` is a dotted path (``source.sdk``, ``params.color``; empty for the record itself); ``also``
    names the other fields at fault, if any.
    """

    record: str
    field: str
    rule: str
    value: Any = None
    also: tuple[str, ...] = ()

    def __str__(self) -> str:
        more = f"; also {', '.join(self.also)}" if self.also else ""
        return f"{self.field or 'record'}: {self.reason}{more}"

    @property
    def reason(self) -> str:
        """The rule and the value that broke it: ``must be > 0 and <= 1 (got 5.0)``."""
        return self.rule if self.rule == "is required" else f"{self.rule} (got {_shown(self.value)})"

    @property
    def message(self) -> str:
        """``Record.field: rule (got value)``: what a dead letter or an InvalidRecordError says."""
        return f"{self.record}.{self}"


class Contract:
    """The check of one record type: :meth:`check` for a whole record, :meth:`check_field` for one field."""

    __slots__ = ("_field_checks", "_field_schemas", "_field_validators", "_model", "fast", "name")

    def __init__(self, model: type[AvroModel]) -> None:
        self.name = model.avro_name
        self._model = model
        schema = model.__pydantic_core_schema__
        fields = _model_fields(schema) or {}
        self._field_schemas: dict[str, Schema] = {name: f["schema"] for name, f in fields.items()}
        self._field_checks = {name: _fast(s) for name, s in self._field_schemas.items()}
        self._field_validators: dict[str, tuple[SchemaValidator, SchemaSerializer]] = {}  # built on first need
        self.fast: Check = _fast(schema)
        """True only for a record the model accepts (a plain dict holding every field); False: ask the model."""

    def check(self, record: object) -> Violation | None:
        """None if ``record`` (a dict in Avro form, or the collector's JSON) keeps the contract, else why not."""
        if self.fast(record):
            return None
        try:
            self._model.__pydantic_validator__.validate_python(record)
        except ValidationError as exc:
            return _first(violations(self.name, exc, self._model.__pydantic_core_schema__))
        return None

    def check_field(self, field: str, value: object) -> Violation | None:
        """Like :meth:`check` for one field's value (the models have no cross-field rules for these)."""
        return self.wire_field(field, value)[1]

    def wire_field(self, field: str, value: object) -> tuple[Any, Violation | None]:
        """``(value as the record carries it, None)`` if the contract takes it for ``field``, else ``(None, why)``.

        A value already in wire form comes back as it is; one the model converts (an int for a float, bytes
        for a string, a UUID in another spelling) comes back as the model writes it (``to_avro``).
        """
        if self._field_checks[field](value):
            return value, None
        schema = self._field_schemas[field]
        if field not in self._field_validators:
            self._field_validators[field] = (SchemaValidator(schema), SchemaSerializer(schema))
        validator, serializer = self._field_validators[field]
        try:
            validated = validator.validate_python(value)
        except ValidationError as exc:
            return None, _first(violations(self.name, exc, schema, prefix=(field,)))
        return serializer.to_python(validated), None


def violations(record: str, exc: ValidationError, schema: Schema, prefix: tuple[str, ...] = ()) -> list[Violation]:
    """One :class:`Violation` per error of a model's ValidationError (``schema``: the model's core schema)."""
    found = []
    for error in exc.errors(include_url=False):
        loc = tuple(map(str, error["loc"]))
        rule = _rule(error, _node_at(schema, loc))
        value = None if error["type"] == "missing" else error.get("input")  # a missing field's input: the record
        found.append(Violation(record, ".".join((*prefix, *loc)), rule, value))
    return found


def _first(found: list[Violation]) -> Violation:
    others = tuple(dict.fromkeys(v.field for v in found[1:] if v.field != found[0].field))
    return replace(found[0], also=others)


def _rule(error: ErrorDetails, node: Schema | None) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of the record"
    if kind in _BOUND_ERRORS:
        source: Mapping[str, Any] = node if node is not None else error.get("ctx", {})
        return "must be " + " and ".join(f"{op} {_number(source[k])}" for k, op in _BOUNDS if k in source)
    if kind == "string_too_short":
        least = error.get("ctx", {}).get("min_length", 1)
        return "must be a non-empty string" if least == 1 else f"must have at least {least} characters"
    message = error["msg"].removeprefix("Value error, ")
    return "must " + message.removeprefix("Input should ") if message.startswith("Input should ") else message


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _node_at(schema: Schema, loc: tuple[str, ...]) -> Schema | None:
    """The innermost constrained schema at ``loc`` (through models, defaults, nullables), for its bounds."""
    node: Schema | None = _unwrap(schema)
    for part in loc:
        fields = _model_fields(node) if node is not None else None
        if fields is None or part not in fields:
            return None
        node = _unwrap(fields[part]["schema"])
    return node


def _unwrap(node: Schema) -> Schema:
    while node["type"] in ("default", "nullable"):
        node = node["schema"]
    return node


def _model_fields(node: Schema) -> Mapping[str, Schema] | None:
    if node["type"] == "model" and node["schema"]["type"] == "model-fields":
        return node["schema"]["fields"]
    return None


def _never(_value: object) -> bool:
    return False


# -- the fast path: the model's own schema, in wire form ----------------------------------------------
# A copy of the model's pydantic-core schema that accepts a subset of what the model accepts, validated in
# Rust without building a model (no datetimes, no instances): the values as Avro carries them. Models become
# strict typed dicts with every field required, a Timestamp takes epoch milliseconds, a UUID its canonical
# text, and every other leaf is the model's own node made strict (its bounds and lengths unchanged). A node
# it does not know (a validator function, a union...) gives no fast path at all: the model decides.


def _wire(node: Schema) -> Schema | None:
    kind = node["type"]
    if kind == "uuid" and "version" not in node:
        return {"type": "str", "strict": True, "pattern": _UUID}  # a UUID's canonical text, as Avro carries it
    if kind in _LEAVES:
        return {**node, "strict": True}  # the exact type: a str field takes no bytes, an int field no float
    if node == _TIMESTAMP:
        return {"type": "int", "strict": True, "ge": _MILLIS_MIN, "le": _MILLIS_MAX}
    if kind == "model":
        return _wire_model(node)
    if kind == "default":
        return _wire(node["schema"])  # every field present: a default is never used
    children = _CHILDREN.get(kind)
    if children is None:
        return None
    wired = {key: _wire(node[key]) for key in children if key in node}
    if any(child is None for child in wired.values()):
        return None
    return {**node, **wired}


def _wire_model(node: Schema) -> Schema | None:
    fields = _model_fields(node)
    if fields is None or node.get("post_init") or node.get("root_model") or node.get("custom_init"):
        return None
    if node["schema"].get("computed_fields") or not set(node.get("config", {})) <= _HARMLESS_CONFIG:
        return None
    wired = {}
    for name, field in fields.items():
        schema = _wire(field["schema"])
        if schema is None or set(field) - {"type", "schema", "metadata"}:  # aliases, frozen fields...
            return None
        wired[name] = {"type": "typed-dict-field", "schema": schema, "required": True}
    config = {**node.get("config", {}), "extra_fields_behavior": "forbid"}  # e.g. how bytes read from a str
    return {"type": "typed-dict", "fields": wired, "extra_behavior": "forbid", "strict": True, "config": config}


def _fast(schema: Schema) -> Check:
    wired = _wire(schema)
    if wired is None:
        return _never
    accepts = SchemaValidator(wired).isinstance_python
    if wired["type"] != "typed-dict":
        return accepts
    return lambda record: type(record) is dict and accepts(record)


_LEAVES = frozenset({"str", "int", "float", "bool", "bytes", "literal"})
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_CHILDREN: Mapping[str, tuple[str, ...]] = {
    "nullable": ("schema",),
    "dict": ("keys_schema", "values_schema"),
    "list": ("items_schema",),
}

CONTRACTS: Mapping[str, Contract] = {name: Contract(model) for name, model in MODELS.items()}
"""The contract of each top-level record, by short record name (as :data:`schemas.models.MODELS`)."""


def contract(record: str) -> Contract:
    """The contract of a record type (``"Exposure"``, ``"Event"``, ``"FirstExposure"``...)."""
    return CONTRACTS[record]
