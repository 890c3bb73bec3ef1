"""The assignment-flags job's checker on definitions as the follower holds them (Avro dicts), without a broker."""

from __future__ import annotations

import uuid
from typing import Any

from schemas.hashing import assign
from schemas.serde import AvroSerde
from stream_jobs.assignment_flags import AssignmentChecker
from tests.unit.experiments.base import definition

PARAMS = {"param": "variant", "op": "UniformChoice", "choices": ["A", "B"], "experiment_salt": "checkout"}
T0 = 1_750_000_000_000


class Follower:
    """What the checker reads from a DefinitionFollower: revisions by (key, revision), decoded."""

    def __init__(self, *records: dict[str, Any]) -> None:
        self.records = {(r["key"], r["revision"]): r for r in records}

    def get(self, key: str, revision: int) -> dict[str, Any] | None:
        return self.records.get((key, revision))

    def revisions(self, key: str) -> list[int]:
        return sorted(r for k, r in self.records if k == key)


def _exposure(unit: str, variant: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "experiment": "checkout", "revision": 1, "variant": variant,
        "unit_type": "user_id", "unit_id": unit, "scheme": "planout", "client_ts": T0, "params": {},
    }  # fmt: skip


def test_a_unit_planout_cannot_assign_is_flagged_not_raised() -> None:
    serde = AvroSerde("ExperimentDefinition")
    record = serde.decode(serde.encode(definition(scheme="planout", scheme_params=PARAMS).to_record().to_avro()))
    checker = AssignmentChecker(Follower(record))  # type: ignore[arg-type]
    right = assign("planout", PARAMS, "u-1").variant
    assert right is not None

    assert checker.check(_exposure("u-1", right), T0 + 1) is None
    flag = checker.check(_exposure("é-1", "A"), T0 + 1)

    assert flag is not None and (flag["reason"], flag["expected_variant"], flag["flagged_ts"]) == (
        "unassignable_unit", None, T0 + 1,
    )  # fmt: skip
    flags = AvroSerde("AssignmentFlag")
    assert flags.decode(flags.encode(flag))["reason"] == "unassignable_unit"  # what the job produces
