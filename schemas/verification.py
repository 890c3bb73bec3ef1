"""Re-verify one logged exposure against the definition revision it names: is its variant the right one?

The checks, in order; the first that fails gives the flag, and ``None`` means the exposure is fine:

1. no definition: ``unknown_revision`` when other revisions of the experiment are known, else
   ``unknown_experiment``;
2. the variant is not one of the revision's variants: ``unknown_variant`` (checked for every exposure);
3. legitimate exceptions end here, unflagged: ``forced``, ``sticky_bucket_used``, ``hash_used`` false
   (the SDK says why it did not hash) and scheme ``external`` (nothing to recompute);
4. ``unit_type`` differs from the definition's: ``other`` (the hash was fed another id);
5. state ``inactive``, or ``active`` with ``client_ts`` outside ``[start, end]``: ``exposure_while_inactive``;
6. state ``rollout``: anything but ``rollout_variant`` is a ``rollout_mismatch`` (the rollout variant is
   what everyone should see, so logging it is fine);
7. state ``active``: the scheme's hash is recomputed; another variant, or none (the unit is outside the
   experiment and should not have been logged), is a ``variant_mismatch``. For Eppo, the allocation the
   exposure reports (``params["allocation"]``) stands for the outcome of its targeting rules. A unit the
   scheme's SDK cannot assign at all (PlanOut raises on a non-ASCII unit id) is an ``unassignable_unit``:
   no real client of that SDK logged the exposure. A revision whose ``scheme_params`` cannot be read
   (records on the topic may come from elsewhere) flags ``other``, naming the problem.

A ``variant_mismatch`` says what the exposure's own hash inputs show, when they differ from the
definition's: the seed it logged (``hash_seed``: GrowthBook's seed, the PlanOut experiment salt, which
is what PlanOut logs as ``salt``) and the bucket.

Pure and cheap for a stream job: assigners are built once per distinct ``(scheme, scheme_params)``.
Exposures are Avro dicts as decoded (epoch-millisecond timestamps, string UUIDs).

    >>> flag = verify(exposure, definitions.get((exposure["experiment"], exposure["revision"])),
    ...               known_revisions=revisions_of[exposure["experiment"]])
    >>> if flag: producer.produce(..., AvroSerde("AssignmentFlag").encode(flag_record(exposure, flag)))
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from abstream.errors import UnassignableUnitError
from schemas._definition_rules import EXTERNAL
from schemas.hashing import Assigner, Assignment, assigner
from schemas.models import ExperimentDefinition, FlagReason

__all__ = ["Flag", "FlagReason", "flag_record", "verify"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_LOGGED_SEED = {"growthbook": ("seed", "seed"), "planout": ("experiment_salt", "experiment salt")}
"""Per scheme: the assignment input an exposure's ``hash_seed`` reports, and what to call it."""


@dataclass(frozen=True, slots=True)
class Flag:
    """Why an exposure disagrees with its definition; :func:`flag_record` makes the Avro record."""

    reason: FlagReason
    detail: str
    expected_variant: str | None = None


def verify(
    exposure: Mapping[str, Any],
    definition: ExperimentDefinition | None,
    *,
    known_revisions: Collection[int] = (),
) -> Flag | None:
    """The flag for ``exposure`` under ``definition`` (the revision it names), or ``None`` when it is fine.

    ``known_revisions`` are the revisions known for the exposure's experiment; they tell an unknown
    revision from an unknown experiment when ``definition`` is ``None``.
    """
    if definition is None:
        return _missing(exposure, known_revisions)
    variant = exposure["variant"]
    names = [v.name for v in definition.variants]
    if variant not in names:
        where = f"{definition.key!r} revision {definition.revision}"
        return Flag("unknown_variant", f"{variant!r} is not a variant of {where} (variants: {', '.join(names)})")
    if _legitimate_exception(exposure, definition):
        return None
    if exposure["unit_type"] != definition.unit_type:
        detail = f"unit_type {exposure['unit_type']!r} is not the definition's {definition.unit_type!r}"
        return Flag("other", detail)
    if definition.state == "inactive" or (definition.state == "active" and not _in_window(exposure, definition)):
        return Flag("exposure_while_inactive", _inactive_detail(exposure, definition), definition.fallback_variant)
    if definition.state == "rollout":
        return _rollout(variant, definition)
    return _hashed(exposure, definition)


def _missing(exposure: Mapping[str, Any], known_revisions: Collection[int]) -> Flag:
    experiment, revision = exposure["experiment"], exposure["revision"]
    if known_revisions:
        known = ", ".join(str(r) for r in sorted(known_revisions))
        return Flag("unknown_revision", f"revision {revision} of {experiment!r} is not published (known: {known})")
    return Flag("unknown_experiment", f"no definition of experiment {experiment!r} is published")


def _legitimate_exception(exposure: Mapping[str, Any], definition: ExperimentDefinition) -> bool:
    return (
        definition.scheme == EXTERNAL
        or exposure.get("forced", False)
        or exposure.get("sticky_bucket_used", False)
        or not exposure.get("hash_used", True)
    )


def _in_window(exposure: Mapping[str, Any], definition: ExperimentDefinition) -> bool:
    at = _millis(exposure["client_ts"])
    start, end = definition.start_ts, definition.end_ts
    return (start is None or at >= _millis(start)) and (end is None or at <= _millis(end))


def _inactive_detail(exposure: Mapping[str, Any], definition: ExperimentDefinition) -> str:
    where = f"{definition.key!r} revision {definition.revision}"
    if definition.state == "inactive":
        return f"{where} is inactive: everyone gets {definition.fallback_variant!r} and nothing should be logged"
    at = _instant(exposure["client_ts"]).isoformat()
    window = f"[{_show(definition.start_ts)}, {_show(definition.end_ts)}]"
    return f"client_ts {at} is outside the active window {window} of {where}"


def _rollout(variant: str, definition: ExperimentDefinition) -> Flag | None:
    expected = definition.rollout_variant
    if variant == expected:
        return None
    detail = f"{definition.key!r} revision {definition.revision} rolls out {expected!r} to everyone, logged {variant!r}"
    return Flag("rollout_mismatch", detail, expected)


def _hashed(exposure: Mapping[str, Any], definition: ExperimentDefinition) -> Flag | None:
    unit, variant = exposure["unit_id"], exposure["variant"]
    where = f"{definition.key!r} revision {definition.revision}"
    try:
        check = _assigner(definition.scheme, definition.scheme_params)
    except ValueError as exc:  # a SchemeParamsError, or scheme_params that are not JSON
        return Flag("other", f"the scheme_params of {where} cannot be used, so nothing can be verified: {exc}")
    try:
        assignment = check(unit, _instant(exposure["client_ts"]), exposure.get("params"))
    except UnassignableUnitError as exc:
        return Flag("unassignable_unit", f"{exc}; logged {variant!r} for {where}")
    if assignment.variant == variant:
        return None
    if assignment.variant is None:
        detail = f"unit {unit!r} is not in the experiment ({assignment.reason}) and should not be logged"
    else:
        detail = f"the {definition.scheme} hash gives unit {unit!r} {assignment.variant!r} ({assignment.reason})"
    detail += f", logged {variant!r}" + _evidence(exposure, definition.scheme, assignment)
    return Flag("variant_mismatch", detail, assignment.variant)


def _evidence(exposure: Mapping[str, Any], scheme: str, assignment: Assignment) -> str:
    """What the exposure's own hash inputs say, when it reports them: a seed or a bucket that differs."""
    notes = []
    key, name = _LOGGED_SEED.get(scheme, ("", ""))
    seed, logged_seed = assignment.inputs.get(key), exposure.get("hash_seed")
    if logged_seed is not None and seed is not None and logged_seed != seed:
        notes.append(f"it was hashed with {name} {logged_seed!r}, the definition's is {seed!r}")
    for field, kind in (("bucket_index", int), ("bucket_position", float)):
        logged = exposure.get(field)
        if logged is not None and isinstance(assignment.bucket, kind) and logged != assignment.bucket:
            notes.append(f"it logged {field} {logged}, the hash gives {assignment.bucket}")
    return f"; {'; '.join(notes)}" if notes else ""


@lru_cache(maxsize=4096)
def _assigner(scheme: str, scheme_params: str) -> Assigner:
    """One parsed assigner per distinct definition: parsing Eppo or PlanOut params costs more than hashing."""
    return assigner(scheme, json.loads(scheme_params))


def flag_record(exposure: Mapping[str, Any], flag: Flag, *, flagged_ts: int | datetime | None = None) -> dict[str, Any]:
    """The Avro ``AssignmentFlag`` record (as the serde encodes it) for ``exposure`` flagged with ``flag``.

    ``flagged_ts`` is epoch milliseconds or an aware datetime, now by default.
    """
    return {
        "event_id": str(exposure["event_id"]),
        "experiment": exposure["experiment"],
        "revision": exposure["revision"],
        "unit_type": exposure["unit_type"],
        "unit_id": exposure["unit_id"],
        "logged_variant": exposure["variant"],
        "expected_variant": flag.expected_variant,
        "reason": flag.reason,
        "detail": flag.detail,
        "variants_seen": [],
        "exposure_ts": _millis(exposure["client_ts"]),
        "flagged_ts": _millis(datetime.now(UTC) if flagged_ts is None else flagged_ts),
    }


def _millis(value: int | datetime) -> int:
    return value if isinstance(value, int) else (value - _EPOCH) // _MILLISECOND


def _instant(value: int | datetime) -> datetime:
    return _EPOCH + value * _MILLISECOND if isinstance(value, int) else value


def _show(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat()
