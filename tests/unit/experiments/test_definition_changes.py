"""The transition table of the tutorial and the revision discipline, rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.definition_changes import Change, check_transition, errors_of
from tests.unit.experiments.base import definition

ROLLOUT = {"state": "rollout", "rollout_variant": "B"}
STATES: dict[str, dict[str, Any]] = {"inactive": {"state": "inactive"}, "active": {}, "rollout": ROLLOUT}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    return check_transition(definition(**before), definition(**after))


@pytest.mark.parametrize(
    ("old", "new", "note", "error"),
    [
        ("inactive", "inactive", None, None),
        ("inactive", "active", "start: units are hashed into variants", None),
        ("inactive", "rollout", None, "inactive → rollout is not allowed: a rollout ends an experiment that ran"),
        ("active", "inactive", "pause: everyone gets the fallback variant and nothing is logged", None),
        ("active", "active", None, None),
        ("active", "rollout", "end: everyone gets 'B'; set end to when the rollout began", None),
        ("rollout", "inactive", None, "rollout → inactive is not allowed; to serve the fallback variant"),
        ("rollout", "active", "restart: units exposed before must be excluded from the analysis", None),
        ("rollout", "rollout", None, None),
    ],
)
def test_every_state_transition_follows_the_tutorial(old: str, new: str, note: str | None, error: str | None) -> None:
    changes = _changes(STATES[old], {**STATES[new], "revision": 2})

    if old == new:
        assert changes == []
        return
    (change,) = changes
    assert (change.field, change.before, change.after, change.kind) == ("state", old, new, "transition")
    assert change.needs_bump
    if error is None:
        assert note is not None and change.note.startswith(note) and change.error is None
    else:
        assert change.error is not None and change.error.startswith(error)


def test_a_state_change_without_a_new_revision_is_refused() -> None:
    changes = _changes({}, {"state": "inactive"})

    assert errors_of(changes) == ["revision must be bumped: state: 'active' → 'inactive'"]


REASSIGNING = [
    ({"unit_type": "device_id"}, "unit_type: 'user_id' → 'device_id'"),
    ({"scheme_params": {"salt": "other"}}, "scheme_params.salt: 'checkout' → 'other'"),
    ({"variants": [{"name": "A", "weight": 60}, {"name": "B", "weight": 40}]}, "variants.A.weight: 50 → 60"),
    (
        {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}, {"name": "C", "weight": 10}]},
        "variants.C: (none) → 10",
    ),
    ({"variants": [{"name": "A", "weight": 50}, {"name": "C", "weight": 50}]}, "variants.B: 50 → (none)"),
    (
        {"scheme": "growthbook", "scheme_params": {"key": "checkout", "variations": ["A", "B"]}},
        "scheme: 'sha256-weights' → 'growthbook'",
    ),
    ({"start": "2025-01-01T00:00:00Z"}, "start: (none) → 2025-01-01T00:00:00+00:00"),
    ({"end": "2026-01-01T00:00:00Z"}, "end: (none) → 2026-01-01T00:00:00+00:00"),
]


@pytest.mark.parametrize(("after", "summary"), REASSIGNING)
def test_a_change_that_reassigns_exposed_units_needs_a_new_revision(after: dict[str, Any], summary: str) -> None:
    same = _changes({}, after)
    bumped = _changes({}, {**after, "revision": 2})

    (error,) = errors_of(same)
    assert error.startswith("revision must be bumped: ") and summary in error
    assert errors_of(bumped) == []
    assert summary in [change.summary for change in bumped if change.needs_bump]


@pytest.mark.parametrize(
    ("before", "after", "summary"),
    [
        ({"start": "2025-01-01T00:00:00Z"}, {"start": "2025-02-01T00:00:00Z"}, "start: 2025-01-01"),
        ({"end": "2026-01-01T00:00:00Z"}, {"end": "2025-12-01T00:00:00Z"}, "end: 2026-01-01"),
        (ROLLOUT, {**ROLLOUT, "rollout_variant": "A"}, "rollout_variant: 'B' → 'A'"),
        (
            {"scheme": "growthbook", "scheme_params": {"key": "checkout", "variations": ["A", "B"]}},
            {"scheme": "growthbook", "scheme_params": {"key": "checkout", "variations": ["A", "B"], "seed": "s2"}},
            "scheme_params.seed: (none) → 's2'",
        ),
    ],
)
def test_narrowing_the_window_or_moving_a_rollout_reassigns_too(
    before: dict[str, Any], after: dict[str, Any], summary: str
) -> None:
    (error,) = errors_of(_changes(before, after))

    assert error.startswith("revision must be bumped: ") and summary in error


@pytest.mark.parametrize(
    ("before", "after", "kind", "summary"),
    [
        ({}, {"title": "New title"}, "cosmetic", "title: 'Checkout' → 'New title'"),
        ({}, {"owner": "team-b"}, "cosmetic", "owner: (none) → 'team-b'"),
        ({"end": "2026-01-01T00:00:00Z"}, {"end": "2026-06-01T00:00:00Z"}, "cosmetic", "end: 2026-01-01"),
        ({"end": "2026-01-01T00:00:00Z"}, {}, "cosmetic", "end: 2026-01-01T00:00:00+00:00 → (none)"),
        ({"start": "2025-02-01T00:00:00Z"}, {"start": "2025-01-01T00:00:00Z"}, "cosmetic", "start: 2025-02-01"),
        (
            {},
            {"variants": [{"name": "B", "weight": 50}, {"name": "A", "weight": 50}]},
            "cosmetic",
            "variants: ['A', 'B'] → ['B', 'A']",
        ),
        ({}, {"fallback_variant": "B"}, "serving", "fallback_variant: 'A' → 'B'"),
        ({}, {"attribution_window": "14d"}, "analysis", "attribution_window: '7d' → '14d'"),
        ({}, {"dedupe": "window", "dedupe_window": "1d"}, "analysis", "dedupe: 'first_ever' → 'window'"),
    ],
)
def test_changes_that_reassign_nobody_keep_the_revision(
    before: dict[str, Any], after: dict[str, Any], kind: str, summary: str
) -> None:
    changes = _changes(before, after)

    assert errors_of(changes) == []
    assert any(c.kind == kind and c.summary.startswith(summary) and not c.needs_bump for c in changes)


def test_the_revision_never_goes_back() -> None:
    changes = _changes({"revision": 3}, {"revision": 2, "title": "t"})

    assert errors_of(changes) == ["revision went backwards from 3 to 2; revisions only go up"]


def test_published_records_compare_like_files_and_identical_ones_do_not_differ() -> None:
    published = definition().to_record()

    assert check_transition(published, definition()) == []
    assert errors_of(check_transition(published, definition(scheme_params={"salt": "x"})))


def test_two_experiments_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="cannot compare two experiments"):
        check_transition(definition(), definition(key="other", scheme_params={"salt": "x"}))


def test_a_change_reads_as_a_sentence() -> None:
    (change,) = _changes({}, {"title": "T", "revision": 2})

    assert str(change) == "title: 'Checkout' → 'T'"
    (state,) = _changes({}, {"state": "inactive", "revision": 2})
    assert str(state).startswith("state: 'active' → 'inactive' (pause: ")
