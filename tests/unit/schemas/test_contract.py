"""The contract's checks against the models they come from: same verdict, always; the fast path on wire records."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.catalog import default_catalog
from schemas.contract import CONTRACTS, TIMESTAMP_MILLIS, Violation, contract
from schemas.models import MODELS
from schemas.serde import AvroSerde
from tests.unit.schemas.schema_examples import VALID, records, texts

# Each record as the jobs and the sink see it: validated by its model, then in Avro form and decoded.
WIRE = {
    name: AvroSerde(name).decode(AvroSerde(name).encode(MODELS[name].model_validate(VALID[name]).to_avro()))
    for name in CONTRACTS
}
EDGES = [
    0, 1, -1, 2, 2**31 - 1, 2**31, -(2**31), 2**63 - 1, 2**63, -(2**63) - 1,
    TIMESTAMP_MILLIS.start - 1, TIMESTAMP_MILLIS.start, TIMESTAMP_MILLIS.stop - 1, TIMESTAMP_MILLIS.stop,
    0.0, -0.0, 1.0, 0.5, 1.5, -1.0, 5.0, 1e-300, 0.9999999999999999, float("nan"), float("inf"), float("-inf"),
    "", "x", "not-a-uuid", "6C4E3C0E-2A6F-4A55-9D0C-4C7F6FB1B2A1", "6c4e3c0e2a6f4a559d0c4c7f6fb1b2a1",
    "{6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1}", "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a", "2026-01-01T00:00:00Z",
    True, False, None, b"", b"x", [], ["a"], [1], {}, {"k": "v"}, {"k": 1}, {1: "v"},
    {"sdk": None, "sdk_version": None, "app": None, "host": None},
    {"sdk": 1, "sdk_version": None, "app": None, "host": None},
]  # fmt: skip
values = st.one_of(
    st.sampled_from(EDGES), st.integers(), st.floats(), texts, st.uuids().map(str), st.binary(max_size=4)
)


def _model_accepts(name: str, record: Any) -> bool:
    try:
        MODELS[name].model_validate(record)
    except ValidationError:
        return False
    return True


def _agree(name: str, record: Any) -> None:
    accepted = _model_accepts(name, record)
    checked = CONTRACTS[name]
    if checked.fast(record):
        assert accepted, f"the fast path accepted what {name} refuses: {record!r}"
    violation = checked.check(record)
    assert (violation is None) == accepted, (record, violation)
    if violation is not None:
        with pytest.raises(ValidationError) as caught:
            MODELS[name].model_validate(record)
        fields = {".".join(map(str, e["loc"])) for e in caught.value.errors()}
        assert violation.field in fields and set(violation.also) <= fields


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CONTRACTS)), st.data())
def test_the_verdict_is_the_models_on_any_record_the_avro_schema_admits(name: str, data: st.DataObject) -> None:
    _agree(name, data.draw(records(default_catalog().latest(name))))


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CONTRACTS)), st.data())
def test_the_verdict_is_the_models_on_a_valid_record_with_fields_changed(name: str, data: st.DataObject) -> None:
    record = dict(WIRE[name])
    for _ in range(data.draw(st.integers(1, 3))):
        field = data.draw(st.sampled_from(sorted(record)))
        change = data.draw(st.sampled_from(["value", "value", "value", "delete", "extra", "nested"]))
        if change == "value":
            record[field] = data.draw(values)
        elif change == "delete":
            del record[field]
        elif change == "extra":
            record[data.draw(texts)] = data.draw(values)
        elif isinstance(record[field], dict):  # source, maps: a key changed inside
            record[field] = {
                **record[field],
                data.draw(st.sampled_from([*record[field], "sdk", "k"])): data.draw(values),
            }
    _agree(name, record)


@pytest.mark.parametrize("name", sorted(set(CONTRACTS) - {"ExperimentDefinition"}))
def test_valid_wire_records_take_the_fast_path(name: str) -> None:
    assert CONTRACTS[name].fast(WIRE[name])
    assert CONTRACTS[name].check(WIRE[name]) is None


def test_a_model_with_validators_of_its_own_has_no_fast_path_but_the_same_verdict() -> None:
    definition = contract("ExperimentDefinition")

    assert not definition.fast(WIRE["ExperimentDefinition"])
    assert definition.check(WIRE["ExperimentDefinition"]) is None
    broken = definition.check({**WIRE["ExperimentDefinition"], "fallback_variant": "C"})
    assert broken is not None and "'C' is not a variant" in broken.rule


@pytest.mark.parametrize(
    ("record", "change", "message"),
    [
        ("Exposure", {"sampling_rate": 5.0}, "Exposure.sampling_rate: must be > 0 and <= 1 (got 5.0)"),
        ("Exposure", {"sampling_rate": 0.0}, "Exposure.sampling_rate: must be > 0 and <= 1 (got 0.0)"),
        ("Exposure", {"revision": -1}, "Exposure.revision: must be >= 0 and < 2147483648 (got -1)"),
        ("Exposure", {"bucket_position": 1.5}, "Exposure.bucket_position: must be >= 0 and < 1 (got 1.5)"),
        ("Exposure", {"experiment": ""}, "Exposure.experiment: must be a non-empty string (got '')"),
        (
            "Exposure",
            {"source": {**WIRE["Exposure"]["source"], "sdk": 7}},
            "Exposure.source.sdk: must be a valid string (got 7)",
        ),
        (
            "Event",
            {"event_id": "nope"},
            "Event.event_id: must be a valid UUID, invalid character: found `n` at 0 (got 'nope')",
        ),
        (
            "Event",
            {"ts": TIMESTAMP_MILLIS.stop},
            "Event.ts: epoch milliseconds must be within the years 1 to 9999 (got 253402300800000)",
        ),
        (
            "FirstExposure",
            {"duplicates": -1},
            "FirstExposure.duplicates: must be >= 0 and < 9223372036854775808 (got -1)",
        ),
    ],
)
def test_a_violation_names_the_field_and_the_rule(record: str, change: dict[str, Any], message: str) -> None:
    violation = contract(record).check({**WIRE[record], **change})

    assert violation is not None and violation.message.startswith(message)


def test_a_missing_field_and_the_other_fields_at_fault_are_named() -> None:
    record = {**WIRE["Exposure"], "sampling_rate": 2.0, "revision": -1}
    del record["experiment"]

    violation = contract("Exposure").check(record)

    assert violation == Violation("Exposure", "experiment", "is required", also=("revision", "sampling_rate"))
    assert violation.message == "Exposure.experiment: is required; also revision, sampling_rate"


def test_one_field_is_checked_alone_with_the_same_words() -> None:
    exposure = contract("Exposure")

    assert exposure.check_field("bucket_position", None) is None
    assert exposure.check_field("bucket_position", 0.25) is None
    violation = exposure.check_field("bucket_position", 1.5)
    assert violation is not None and violation.message == "Exposure.bucket_position: must be >= 0 and < 1 (got 1.5)"
    nested = exposure.check_field("params", {"k": 1})
    assert nested is not None and nested.field == "params.k"
