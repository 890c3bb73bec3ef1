"""verify(): one test per flag reason and per legitimate exception, and the AssignmentFlag it makes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.hashing import assign
from schemas.models import AssignmentFlag, ExperimentDefinition, Exposure
from schemas.serde import AvroSerde
from schemas.verification import Flag, flag_record, verify
from tests.unit.experiments.base import definition

AT = datetime(2025, 6, 1, tzinfo=UTC)
ACTIVE = definition().to_record()


def _right(unit: str, record: ExperimentDefinition = ACTIVE) -> str:
    variant = assign(record.scheme, json.loads(record.scheme_params), unit).variant
    assert variant is not None
    return variant


def _other(variant: str) -> str:
    return "B" if variant == "A" else "A"


def exposure(**changes: Any) -> dict[str, Any]:
    """A decoded Exposure record (as the stream job sees it), with the right variant unless changed."""
    unit = changes.get("unit_id", "u-1")
    fields = {
        "event_id": uuid.uuid4(), "experiment": "checkout", "revision": 1, "variant": _right(unit),
        "unit_type": "user_id", "unit_id": unit, "scheme": "sha256-weights", "client_ts": AT,
    }  # fmt: skip
    serde = AvroSerde("Exposure")
    return serde.decode(serde.encode(Exposure(**{**fields, **changes}).to_avro()))


def test_the_right_variant_passes_and_the_other_is_a_mismatch_for_every_unit() -> None:
    for i in range(2_000):
        unit = f"u-{i}"
        right = _right(unit)
        assert verify(exposure(unit_id=unit), ACTIVE) is None
        flag = verify(exposure(unit_id=unit, variant=_other(right)), ACTIVE)
        assert flag is not None and (flag.reason, flag.expected_variant) == ("variant_mismatch", right)


def test_a_mismatch_explains_the_hash_and_what_the_exposure_says() -> None:
    wrong = exposure(variant=_other(_right("u-1")), hash_seed="old-salt", bucket_index=999)

    flag = verify(wrong, ACTIVE)

    assert flag is not None
    assert flag.detail.startswith(f"the sha256-weights hash gives unit 'u-1' {_right('u-1')!r} (bucket ")
    assert "it logged bucket_index 999, the hash gives" in flag.detail


def test_a_different_seed_is_named() -> None:
    record = definition(scheme="growthbook", scheme_params={"key": "checkout", "variations": ["A", "B"]}).to_record()
    right = _right("u-1", record)

    flag = verify(exposure(variant=_other(right), hash_seed="checkout-v0"), record)

    assert flag is not None and "it was hashed with seed 'checkout-v0', the definition's is 'checkout'" in flag.detail


def test_a_unit_outside_the_experiment_should_not_be_logged() -> None:
    params = {"key": "checkout", "variations": ["A", "B"], "coverage": 0.01}
    record = definition(scheme="growthbook", scheme_params=params).to_record()
    units = [f"u-{i}" for i in range(50)]
    outside = next(u for u in units if assign("growthbook", params, u).variant is None)

    flag = verify(exposure(unit_id=outside, variant="A"), record)

    assert flag is not None and (flag.reason, flag.expected_variant) == ("variant_mismatch", None)
    assert flag.detail.startswith(f"unit {outside!r} is not in the experiment (")


@pytest.mark.parametrize(
    ("known", "reason", "detail"),
    [
        ((), "unknown_experiment", "no definition of experiment 'checkout' is published"),
        ((2, 1), "unknown_revision", "revision 1 of 'checkout' is not published (known: 1, 2)"),
    ],
)
def test_a_missing_definition_is_an_unknown_experiment_or_revision(
    known: tuple[int, ...], reason: str, detail: str
) -> None:
    assert verify(exposure(), None, known_revisions=known) == Flag(reason, detail)  # type: ignore[arg-type]


@pytest.mark.parametrize("exception", [{}, {"forced": True}, {"hash_used": False}, {"sticky_bucket_used": True}])
def test_an_unknown_variant_is_flagged_even_for_legitimate_exceptions(exception: dict[str, Any]) -> None:
    flag = verify(exposure(variant="C", **exception), ACTIVE)

    assert flag == Flag("unknown_variant", "'C' is not a variant of 'checkout' revision 1 (variants: A, B)")


@pytest.mark.parametrize("exception", [{"forced": True}, {"hash_used": False}, {"sticky_bucket_used": True}])
@pytest.mark.parametrize("state", [{}, {"state": "inactive"}, {"state": "rollout", "rollout_variant": "A"}])
def test_legitimate_exceptions_are_not_flagged(exception: dict[str, Any], state: dict[str, Any]) -> None:
    record = definition(**state).to_record()
    unit = next(f"u-{i}" for i in range(50) if _right(f"u-{i}") == "A")

    assert verify(exposure(unit_id=unit, variant="B", **exception), record) is None


def test_an_external_scheme_only_needs_a_known_variant() -> None:
    record = definition(scheme="external", scheme_params={}).to_record()

    assert verify(exposure(variant="B", scheme="external"), record) is None
    assert verify(exposure(variant="A", scheme="external"), record) is None
    flag = verify(exposure(variant="Z", scheme="external"), record)
    assert flag is not None and flag.reason == "unknown_variant"


def test_another_unit_type_fed_the_hash_another_id() -> None:
    flag = verify(exposure(unit_type="device_id"), ACTIVE)

    assert flag == Flag("other", "unit_type 'device_id' is not the definition's 'user_id'")


def test_an_exposure_while_inactive_is_flagged_with_the_fallback_expected() -> None:
    record = definition(state="inactive", fallback_variant="B").to_record()

    flag = verify(exposure(), record)

    assert flag is not None and (flag.reason, flag.expected_variant) == ("exposure_while_inactive", "B")
    assert flag.detail == "'checkout' revision 1 is inactive: everyone gets 'B' and nothing should be logged"


@pytest.mark.parametrize(
    "window", [{"start": "2025-06-01T00:00:00.001Z"}, {"end": "2025-05-31T23:59:59.999Z"}], ids=["before", "after"]
)
def test_an_exposure_outside_the_active_window_counts_as_inactive(window: dict[str, str]) -> None:
    record = definition(**window).to_record()

    flag = verify(exposure(), record)

    assert flag is not None and flag.reason == "exposure_while_inactive"
    assert flag.detail.startswith("client_ts 2025-06-01T00:00:00+00:00 is outside the active window [")


def test_the_window_bounds_themselves_are_inside() -> None:
    record = definition(start="2025-06-01T00:00:00Z", end="2025-06-01T00:00:00.001Z").to_record()

    assert verify(exposure(), record) is None


def test_in_rollout_the_rollout_variant_is_right_and_any_other_is_a_rollout_mismatch() -> None:
    record = definition(state="rollout", rollout_variant="B").to_record()

    assert verify(exposure(variant="B"), record) is None
    flag = verify(exposure(variant="A"), record)
    assert flag == Flag("rollout_mismatch", "'checkout' revision 1 rolls out 'B' to everyone, logged 'A'", "B")


def test_the_flag_record_fits_the_assignment_flag_schema() -> None:
    wrong = exposure(variant=_other(_right("u-1")))
    flag = verify(wrong, ACTIVE)
    assert flag is not None

    record = flag_record(wrong, flag, flagged_ts=datetime(2025, 6, 2, tzinfo=UTC))
    serde = AvroSerde("AssignmentFlag")
    model = AssignmentFlag.from_avro(serde.decode(serde.encode(record)))

    assert str(model.event_id) == wrong["event_id"]
    assert (model.experiment, model.revision, model.unit_id, model.logged_variant) == (
        "checkout",
        1,
        "u-1",
        wrong["variant"],
    )
    assert (model.expected_variant, model.reason, model.detail) == (_right("u-1"), "variant_mismatch", flag.detail)
    assert model.exposure_ts == AT and model.flagged_ts == datetime(2025, 6, 2, tzinfo=UTC)
    assert flag_record(wrong, flag, flagged_ts=1)["flagged_ts"] == 1
    assert flag_record(wrong, flag)["flagged_ts"] > record["flagged_ts"]


PLANOUT = {"param": "variant", "op": "UniformChoice", "choices": ["A", "B"], "experiment_salt": "checkout"}


@pytest.mark.parametrize("unit", ["é-1", "用户42", "😀"])
def test_a_unit_planout_cannot_hash_is_an_unassignable_unit_flag(unit: str) -> None:
    record = definition(scheme="planout", scheme_params=PLANOUT).to_record()

    flag = verify(exposure(unit_id=unit, variant="A", scheme="planout"), record)

    assert flag is not None and (flag.reason, flag.expected_variant) == ("unassignable_unit", None)
    assert flag.detail.startswith("PlanOut hashes ASCII only and raises on ")
    assert flag.detail.endswith("no PlanOut client can assign this unit; logged 'A' for 'checkout' revision 1")
    serde = AvroSerde("AssignmentFlag")
    assert serde.decode(serde.encode(flag_record(exposure(unit_id=unit), flag)))["reason"] == "unassignable_unit"


def test_a_planout_seed_note_names_the_experiment_salt_and_only_when_it_enters_the_hash() -> None:
    record = definition(scheme="planout", scheme_params=PLANOUT).to_record()
    right = assign("planout", PLANOUT, "u-1").variant
    assert right is not None
    wrong = exposure(variant=_other(right), scheme="planout")

    same = verify({**wrong, "hash_seed": "checkout"}, record)  # what the adapter logs: PlanOut's salt
    assert same is not None and same.detail.endswith(f"logged {_other(right)!r}")
    differs = verify({**wrong, "hash_seed": "checkout-v0"}, record)
    assert differs is not None
    assert differs.detail.endswith("; it was hashed with experiment salt 'checkout-v0', the definition's is 'checkout'")
    full = {**PLANOUT, "full_salt": "fixed"}
    full_record = definition(scheme="planout", scheme_params=full).to_record()
    other = _other(assign("planout", full, "u-1").variant or "A")
    flag = verify({**wrong, "variant": other, "hash_seed": "anything"}, full_record)
    assert flag is not None and "hashed with" not in flag.detail  # a full_salt leaves the experiment salt out


def test_a_published_revision_whose_scheme_params_cannot_be_used_flags_other() -> None:
    broken = ACTIVE.model_copy(update={"scheme": "growthbook", "scheme_params": '{"key": "checkout"}'})

    flag = verify(exposure(), broken)

    assert flag is not None and flag.reason == "other"
    assert flag.detail == (
        "the scheme_params of 'checkout' revision 1 cannot be used, so nothing can be verified: "
        "growthbook: missing required key(s) variations"
    )
