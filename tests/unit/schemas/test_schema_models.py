"""The pydantic models agree with the .avsc files (found by walking both) and convert faithfully."""

from __future__ import annotations

import json
import operator
from datetime import UTC, datetime, timedelta, timezone
from functools import reduce
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ValidationError

from schemas.catalog import default_catalog
from schemas.models import MODELS, AvroModel, ExperimentDefinition, Exposure, Source, Variant
from schemas.serde import AvroSerde
from tests.unit.schemas.schema_examples import VALID

ALL_MODELS: dict[str, type[AvroModel]] = {**MODELS, "Source": Source, "Variant": Variant}
PRIMITIVES = {"string": str, "int": int, "long": int, "double": float, "boolean": bool, "bytes": bytes}
LOGICAL = {"uuid": UUID, "timestamp-millis": AwareDatetime}
LIMITS = {"int": 2**31 - 1, "long": 2**63 - 1}


def _python_type(avro: Any) -> Any:
    """The Python type a model field must have for this Avro type."""
    if isinstance(avro, str):
        return PRIMITIVES[avro] if avro in PRIMITIVES else ALL_MODELS[avro.rpartition(".")[2]]
    if isinstance(avro, list):
        return reduce(operator.or_, [type(None) if b == "null" else _python_type(b) for b in avro])
    if "logicalType" in avro:
        return LOGICAL[avro["logicalType"]]
    kind = avro["type"]
    if kind == "map":
        return dict[str, _python_type(avro["values"])]  # type: ignore[misc]
    if kind == "array":
        return list[_python_type(avro["items"])]  # type: ignore[misc]
    if kind == "enum":
        return Literal[tuple(avro["symbols"])]
    if kind == "record":
        return ALL_MODELS[avro["name"]]
    return _python_type(kind)


def _plain(annotation: Any) -> Any:
    """The annotation without pydantic constraints, unions in one spelling."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _plain(args[0])
    if origin is Union or type(annotation).__name__ == "UnionType":
        return reduce(operator.or_, [_plain(arg) for arg in args])
    if origin in (list, dict):
        return origin[tuple(_plain(arg) for arg in args)]
    return annotation


def _records() -> list[tuple[str, dict[str, Any]]]:
    """Every record schema, nested ones included, with the name of the model that mirrors it."""
    found: dict[str, dict[str, Any]] = {}

    def walk(schema: Any) -> None:
        if isinstance(schema, list):
            for branch in schema:
                walk(branch)
        elif isinstance(schema, dict):
            if schema.get("type") == "record":
                found.setdefault(schema["name"], schema)
                for field in schema["fields"]:
                    walk(field["type"])
            walk(schema.get("items"))

    for name in default_catalog().names():
        walk(dict(default_catalog().latest(name).schema))
    return sorted(found.items())


def test_every_top_level_record_has_a_model() -> None:
    assert sorted(MODELS) == sorted(default_catalog().names())
    assert sorted(name for name, _ in _records()) == sorted(ALL_MODELS)


@pytest.mark.parametrize(("name", "schema"), _records(), ids=[name for name, _ in _records()])
def test_model_fields_mirror_the_schema(name: str, schema: dict[str, Any]) -> None:
    model = ALL_MODELS[name]
    assert list(model.model_fields) == [field["name"] for field in schema["fields"]]
    for field in schema["fields"]:
        info = model.model_fields[field["name"]]
        assert _plain(info.annotation) == _python_type(field["type"]), field["name"]
        assert info.is_required() == ("default" not in field), field["name"]
        if "default" in field:
            default = info.get_default(call_default_factory=True)
            assert (default.model_dump() if isinstance(default, BaseModel) else default) == field["default"]


def _int_fields(schema: dict[str, Any]) -> list[tuple[str, int]]:
    ints = []
    for field in schema["fields"]:
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        ints += [(field["name"], LIMITS[b]) for b in branches if isinstance(b, str) and b in LIMITS]
    return ints


@pytest.mark.parametrize(("name", "schema"), _records(), ids=[name for name, _ in _records()])
def test_model_integers_have_the_avro_range(name: str, schema: dict[str, Any]) -> None:
    model, base = ALL_MODELS[name], VALID[name]
    for field, limit in _int_fields(schema):
        assert getattr(model.model_validate_json(json.dumps({**base, field: limit})), field) == limit
        with pytest.raises(ValidationError, match=field):
            model.model_validate_json(json.dumps({**base, field: limit + 1}))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_round_trip_through_the_wire(name: str) -> None:
    model = MODELS[name].model_validate_json(json.dumps(VALID[name]))
    serde = AvroSerde(name, validate=True)
    assert MODELS[name].from_avro(serde.decode(serde.encode(model.to_avro()))) == model


_aware = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
)


@given(st.uuids(), _aware, st.text(min_size=1), st.floats(0, 1, exclude_max=True) | st.none())
def test_exposures_round_trip(event_id: UUID, client_ts: datetime, unit_id: str, position: float | None) -> None:
    change = {"event_id": event_id, "client_ts": client_ts, "unit_id": unit_id, "bucket_position": position}
    exposure = Exposure.model_validate({**VALID["Exposure"], **change})
    serde = AvroSerde("Exposure")
    back = Exposure.from_avro(serde.decode(serde.encode(exposure.to_avro())))
    assert back == exposure
    assert abs(back.client_ts - client_ts) < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("given_ts", "millis"),
    [
        (0, 0),
        (-1, -1),
        (1767225600123, 1767225600123),
        ("2026-01-01T00:00:00.123+01:00", 1767225600123 - 3_600_000),
        (datetime(2026, 1, 1, 0, 0, 0, 123999, tzinfo=UTC), 1767225600123),
    ],
)
def test_timestamps_are_epoch_milliseconds_on_the_wire(given_ts: Any, millis: int) -> None:
    exposure = Exposure.model_validate({**VALID["Exposure"], "client_ts": given_ts})
    assert exposure.to_avro()["client_ts"] == millis
    assert exposure.client_ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-01-01T00:00:00", "timezone info"),
        ("1767225600123", "must be a JSON number, not a string"),
        (1767225600.5, "must be a whole number"),
        (10**17, "within the years 1 to 9999"),
        (True, "valid datetime"),
    ],
)
def test_ambiguous_timestamps_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Exposure.model_validate({**VALID["Exposure"], "client_ts": value})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variant": ""}, "variant\n  String should have at least 1 character"),
        ({"sampling_rate": 0.0}, "sampling_rate\n  Input should be greater than 0"),
        ({"bucket_position": 1.0}, "bucket_position\n  Input should be less than 1"),
        ({"revision": 3.5}, "revision\n  Input should be a valid integer"),
        ({"forced": "yes"}, "forced\n  Input should be a valid boolean"),
        ({"surface": "cart"}, "surface\n  Extra inputs are not permitted"),
        ({"source": {"sdk": "x", "sdkk": "y"}}, "source.sdkk\n  Extra inputs are not permitted"),
    ],
)
def test_exposure_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Exposure.model_validate({**VALID["Exposure"], **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"fallback_variant": "C"},
            "fallback_variant: 'C' is not a variant of 'checkout_v2' revision 3 \\(variants: A, B\\)",
        ),
        ({"state": "rollout"}, "rollout_variant: 'checkout_v2' revision 3 is in state rollout"),
        ({"rollout_variant": "Z"}, "rollout_variant: 'Z' is not a variant"),
        ({"variants": [{"name": "A", "weight": 1}, {"name": "A", "weight": 1}]}, "variants: names repeat"),
        ({"variants": [{"name": "A", "weight": 0}]}, "weights of 'checkout_v2' revision 3 sum to 0"),
        ({"dedupe": "first_ever"}, "dedupe_window_ms: set it exactly when dedupe is 'window'"),
        ({"end_ts": "2025-01-01T00:00:00Z"}, "end_ts: 2025-01-01T00:00:00\\+00:00 is not after start_ts"),
        ({"scheme_params": "salt=x"}, "scheme_params\n  Value error, not valid JSON"),
        ({"scheme_params": "[]"}, "must be a JSON object, not list"),
        ({"definition_hash": "AB" * 32}, "definition_hash\n  String should match pattern"),
    ],
)
def test_definitions_must_be_consistent(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExperimentDefinition.model_validate_json(json.dumps({**VALID["ExperimentDefinition"], **change}))


def _definition(**change: Any) -> ExperimentDefinition:
    return ExperimentDefinition.model_validate_json(json.dumps({**VALID["ExperimentDefinition"], **change}))


def test_definition_digest_ignores_formatting_and_publication() -> None:
    digest = _definition().digest()
    assert len(digest) == 64
    assert _definition(scheme_params='{ "salt" :  "checkout_v2" }').digest() == digest
    assert _definition(published_ts=0, definition_hash="cd" * 32).digest() == digest
    assert _definition(variants=[{"name": "A", "weight": 60}, {"name": "B", "weight": 40}]).digest() != digest
    assert _definition(scheme_params='{"salt": "other"}').digest() != digest


def test_bytes_are_base64_in_json_and_raw_on_the_wire() -> None:
    letter = MODELS["DeadLetter"].model_validate_json(json.dumps(VALID["DeadLetter"]))
    assert letter.to_avro()["raw"] == b"\xc3\x01\x00" and letter.to_avro()["key"] == b"u-123"
    assert json.loads(letter.model_dump_json())["raw"] == VALID["DeadLetter"]["raw"]
