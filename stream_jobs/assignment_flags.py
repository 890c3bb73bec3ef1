"""Assignment checks: every exposure re-verified against the definition revision it names.

The rules live in ``schemas.verification`` (pure, shared with ``abstream verify``); this job looks up
the revision among all revisions followed from the definitions topic and turns a verdict into the
AssignmentFlag record for the assignment-flags topic.
"""

from __future__ import annotations

from typing import Any

from schemas.models import ExperimentDefinition
from schemas.verification import flag_record, verify
from stream_jobs.definitions import DefinitionFollower

__all__ = ["AssignmentChecker"]


class AssignmentChecker:
    def __init__(self, definitions: DefinitionFollower) -> None:
        self._definitions = definitions
        self._models: dict[tuple[str, int], ExperimentDefinition] = {}

    def _definition(self, key: str, revision: int) -> ExperimentDefinition | None:
        model = self._models.get((key, revision))
        if model is None and (raw := self._definitions.get(key, revision)) is not None:
            model = self._models[(key, revision)] = ExperimentDefinition.from_avro(raw)
        return model

    def check(self, exposure: dict[str, Any], flagged_ts: int) -> dict[str, Any] | None:
        """The AssignmentFlag record for ``exposure``, or None when its variant is the right one.

        ``flagged_ts`` comes with the record (its Kafka timestamp), not from a clock: a replay of the
        exposure re-emits the same flag.
        """
        key, revision = exposure["experiment"], exposure["revision"]
        definition = self._definition(key, revision)
        known = () if definition is not None else self._definitions.revisions(key)
        flag = verify(exposure, definition, known_revisions=known)
        return None if flag is None else flag_record(exposure, flag, flagged_ts=flagged_ts)
