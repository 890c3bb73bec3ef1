"""The collector's request body: a batch of exposures and events, validated record by record.

    {"exposures": [{"experiment": "moon_mars", "revision": 1, "variant": "Moon", "unit_id": "d-1", ...}],
     "events":    [{"unit_id": "d-1", "name": "button_click", "properties": {"btn_type": "Moon"}}]}

Records use the Avro field names (``schemas/avro/Exposure``, ``Event``) and are checked with the pydantic
models of :mod:`schemas.models` (the contract every edge applies; errors say the field and the rule as
:mod:`schemas.contract` words them), with a few conveniences for browsers: ``event_id`` may be left out (the
collector draws one), ``client_ts`` / ``ts`` too (then: when the collector received it), timestamps are
epoch milliseconds or ISO 8601 with an offset, and map values (``params``, ``context``, ``properties``)
may be numbers or booleans (sent as strings: ``3``, ``true``). ``received_ts`` is the collector's to set.
A bad record is reported with its index and the fields at fault; it never blocks the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from abstream.errors import BatchTooLargeError, InvalidRecordError
from schemas.contract import violations
from schemas.models import Event, Exposure

__all__ = ["Batch", "FieldError", "Kind", "Rejected", "parse_batch"]

Kind = Literal["exposure", "event"]
_MAPS: Mapping[Kind, tuple[str, ...]] = {"exposure": ("params", "context"), "event": ("properties",)}
_CLIENT_TS: Mapping[Kind, str] = {"exposure": "client_ts", "event": "ts"}
_MODELS: Mapping[Kind, type[Exposure] | type[Event]] = {"exposure": Exposure, "event": Event}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of a record (``field`` is a dotted path, ``params.color``)."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that was not accepted: where it was in the batch and why."""

    index: int
    kind: Kind
    errors: tuple[FieldError, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "errors": [{"field": e.field, "message": e.message} for e in self.errors],
        }


@dataclass
class Batch:
    """A parsed request: the valid records (kind, index in the request, model) and the rejected ones."""

    valid: list[tuple[Kind, int, Exposure | Event]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def parse_batch(
    payload: object,
    *,
    received: datetime,
    new_id: Callable[[], str],
    source: Mapping[str, str | None] | None = None,
    max_records: int = 1000,
) -> Batch:
    """Validate a decoded JSON body; stamps ``received_ts`` and fills the defaults (see the module docstring).

    A body that is not a batch at all (not an object, unknown keys, not lists) raises InvalidRecordError
    naming the key, and one with more than ``max_records`` records BatchTooLargeError: the whole request
    is refused.
    """
    exposures, events = _records(payload, max_records)
    batch = Batch()
    lists: tuple[tuple[Kind, Sequence[object]], ...] = (("exposure", exposures), ("event", events))
    for kind, records in lists:
        for index, raw in enumerate(records):
            model = _validate(kind, index, raw, received, new_id, source, batch.rejected)
            if model is not None:
                batch.valid.append((kind, index, model))
    return batch


def _records(payload: object, max_records: int) -> tuple[Sequence[object], Sequence[object]]:
    if not isinstance(payload, Mapping):
        raise InvalidRecordError('body: expected a JSON object {"exposures": [...], "events": [...]}', field="body")
    unknown = sorted(set(payload) - {"exposures", "events"})
    if unknown:
        raise InvalidRecordError(
            f"body: unknown key(s) {', '.join(map(repr, unknown))} (allowed: exposures, events)", field=unknown[0]
        )
    lists = []
    for key in ("exposures", "events"):
        value = payload.get(key) or []
        if not isinstance(value, list):
            raise InvalidRecordError(f"{key}: expected a list of records, got {type(value).__name__}", field=key)
        lists.append(value)
    count = len(lists[0]) + len(lists[1])
    if count > max_records:
        raise BatchTooLargeError(
            f"body: {count} records; at most {max_records} per batch, split it", records=count, max_records=max_records
        )
    return lists[0], lists[1]


def _validate(
    kind: Kind,
    index: int,
    raw: object,
    received: datetime,
    new_id: Callable[[], str],
    source: Mapping[str, str | None] | None,
    rejected: list[Rejected],
) -> Exposure | Event | None:
    if not isinstance(raw, Mapping):
        rejected.append(Rejected(index, kind, (FieldError("", f"expected a JSON object, got {type(raw).__name__}"),)))
        return None
    if "received_ts" in raw:
        rejected.append(Rejected(index, kind, (FieldError("received_ts", "set by the collector; leave it out"),)))
        return None
    record = {"event_id": new_id(), _CLIENT_TS[kind]: received, **raw, "received_ts": received}
    if source is not None and "source" not in raw:
        record["source"] = dict(source)
    for name in _MAPS[kind]:
        if isinstance(record.get(name), Mapping):
            record[name] = {k: _map_value(v) for k, v in record[name].items()}
    model = _MODELS[kind]
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        found = violations(model.avro_name, exc, model.__pydantic_core_schema__)
        rejected.append(Rejected(index, kind, tuple(FieldError(v.field, v.reason) for v in found)))
        return None


def _map_value(value: object) -> object:
    """Numbers and booleans become the strings a ``map<string,string>`` holds; anything else is left to fail."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
