"""What changed between two revisions of an experiment, and whether that change is allowed.

State transitions follow the admin rules of the web A/B tutorial we started from (seed 004, step 9):

=============  =====================================  ============================  ===========================
from \\ to      inactive                               active                        rollout
=============  =====================================  ============================  ===========================
inactive       no change                              **start**: units are hashed   **refused**: a rollout ends
                                                      into variants                 an experiment that ran
active         **pause**: everyone gets the           no change                     **end**: everyone gets
               fallback, nothing is logged; on                                      ``rollout_variant``; set
               reactivation analyse only units                                      ``end`` to when it began
               first exposed after it
rollout        **refused**: to serve the fallback     **restart**: units exposed    ``rollout_variant`` may
               to everyone, roll out the fallback     before must be excluded from  change (everyone switches)
               variant instead                        the analysis
=============  =====================================  ============================  ===========================

Revision discipline: exposures name the revision they were assigned under and are verified against
exactly that revision, so a change that would move already-exposed units to another variant must come
as a new revision. Such changes are marked ``needs_bump``:

- ``transition``: any state change, as above (the tutorial stamps start and end times on the same edits);
- ``reassigning``: ``unit_type``, ``scheme``, any ``scheme_params`` key (salt, seed, hash version...),
  variants added or removed, a weight, ``rollout_variant`` while in rollout, a start moved later or an
  end moved earlier (exposures in the cut-off time would turn invalid).

Not needing a bump: ``serving`` (``fallback_variant``: only unlogged units see it), ``analysis``
(attribution window, dedupe, the metrics: their roles, the correction, a named metric's definition) and
``cosmetic`` (title, owner, a wider start/end window, variant order, which no scheme reads from
``variants``). A published revision never changes, though: publishing any change takes a new revision
(``deploy.definitions_topic``); that is how a changed metric definition is versioned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.definitions import Definition, State, format_duration
from schemas.hashing import SHA256_WEIGHTS
from schemas.models import ExperimentDefinition

__all__ = ["Change", "ChangeKind", "check_transition", "errors_of"]

ChangeKind = Literal["transition", "reassigning", "serving", "analysis", "cosmetic", "revision"]

_TRANSITIONS: dict[tuple[State, State], tuple[str, str | None]] = {
    ("inactive", "active"): (
        "start: units are hashed into variants; after a pause, analyse only units first exposed under this revision",
        None,
    ),
    ("inactive", "rollout"): (
        "",
        "inactive → rollout is not allowed: a rollout ends an experiment that ran; set state: active first",
    ),
    ("active", "inactive"): (
        "pause: everyone gets the fallback variant and nothing is logged; after reactivation analyse only "
        "units first exposed under the new revision",
        None,
    ),
    ("active", "rollout"): ("end: everyone gets the rollout variant; set end to when the rollout began", None),
    ("rollout", "active"): (
        "restart: units exposed before must be excluded from the analysis; analyse only units first "
        "exposed under this revision",
        None,
    ),
    ("rollout", "inactive"): (
        "",
        "rollout → inactive is not allowed; to serve the fallback variant to everyone, stay in rollout "
        "with rollout_variant set to it",
    ),
}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two revisions; ``error`` says why it is refused (``None``: allowed)."""

    field: str
    before: object
    after: object
    kind: ChangeKind
    note: str = ""
    error: str | None = None

    @property
    def needs_bump(self) -> bool:
        """Whether already-exposed units could change variant, so the revision must go up."""
        return self.kind in ("transition", "reassigning")

    @property
    def summary(self) -> str:
        """``field: before → after``, without the note."""
        return f"{self.field}: {_show(self.before)} → {_show(self.after)}"

    def __str__(self) -> str:
        return f"{self.summary} ({self.note})" if self.note else self.summary


def _show(value: object) -> str:
    if value is None:
        return "(none)"
    return value.isoformat() if isinstance(value, datetime) else repr(value)


def check_transition(
    previous: Definition | ExperimentDefinition, new: Definition | ExperimentDefinition
) -> list[Change]:
    """Every change from ``previous`` to ``new`` of one experiment, the refused ones with an ``error``.

    A ``revision`` change carrying the error is added when the revision goes backwards, or stays
    while a change ``needs_bump``. Usage: ``[c.error for c in check_transition(old, new) if c.error]``
    """
    before, after = _definition(previous), _definition(new)
    if before.key != after.key:
        raise ValueError(f"cannot compare two experiments ({before.key!r} and {after.key!r})")
    changes = [change for diff in _DIFFS for change in diff(before, after)]
    return changes + _revision_rule(before, after, changes)


def errors_of(changes: Iterable[Change]) -> list[str]:
    """The reasons the changes are refused; empty when they are all allowed."""
    return [change.error for change in changes if change.error]


def _definition(value: Definition | ExperimentDefinition) -> Definition:
    return value if isinstance(value, Definition) else Definition.from_record(value)


def _revision_rule(before: Definition, after: Definition, changes: list[Change]) -> list[Change]:
    if after.revision < before.revision:
        error = f"revision went backwards from {before.revision} to {after.revision}; revisions only go up"
        return [Change("revision", before.revision, after.revision, "revision", error=error)]
    bumps = [change.summary for change in changes if change.needs_bump]
    if after.revision == before.revision and bumps:
        error = f"revision must be bumped: {'; '.join(bumps)}"
        return [Change("revision", before.revision, after.revision, "revision", error=error)]
    return []


def _state(before: Definition, after: Definition) -> list[Change]:
    if before.state == after.state:
        if after.state == "rollout" and before.rollout_variant != after.rollout_variant:
            note = "everyone switches to the new rollout variant"
            return [Change("rollout_variant", before.rollout_variant, after.rollout_variant, "reassigning", note)]
        return []
    note, error = _TRANSITIONS[(before.state, after.state)]
    if after.state == "rollout" and error is None:
        note = note.replace("the rollout variant", repr(after.rollout_variant))
    return [Change("state", before.state, after.state, "transition", note, error)]


def _assignment(before: Definition, after: Definition) -> list[Change]:
    return [
        Change(name, getattr(before, name), getattr(after, name), "reassigning", "units are hashed anew")
        for name in ("unit_type", "scheme")
        if getattr(before, name) != getattr(after, name)
    ]


def _scheme_params(before: Definition, after: Definition) -> list[Change]:
    old, new = before.scheme_params, after.scheme_params
    derived = {"weights"} if SHA256_WEIGHTS == before.scheme == after.scheme else set()
    keys = sorted((set(old) | set(new)) - derived)
    return [
        Change(f"scheme_params.{key}", old.get(key), new.get(key), "reassigning", "units are hashed anew")
        for key in keys
        if old.get(key) != new.get(key)
    ]


def _variants(before: Definition, after: Definition) -> list[Change]:
    old, new = before.weights, after.weights
    changes = [Change(f"variants.{name}", old[name], None, "reassigning", "removed") for name in old if name not in new]
    changes += [Change(f"variants.{name}", None, new[name], "reassigning", "added") for name in new if name not in old]
    changes += [
        Change(f"variants.{name}.weight", old[name], new[name], "reassigning", "the split moves")
        for name in old
        if name in new and old[name] != new[name]
    ]
    if not changes and before.variant_names != after.variant_names:
        changes.append(Change("variants", before.variant_names, after.variant_names, "cosmetic", "order only"))
    return changes


def _window(before: Definition, after: Definition) -> list[Change]:
    changes = []
    if before.start != after.start:
        later = after.start is not None and (before.start is None or after.start > before.start)
        changes.append(_bound("start", before.start, after.start, narrows=later, cut="before the new start"))
    if before.end != after.end:
        earlier = after.end is not None and (before.end is None or after.end < before.end)
        changes.append(_bound("end", before.end, after.end, narrows=earlier, cut="after the new end"))
    return changes


def _bound(name: str, old: datetime | None, new: datetime | None, *, narrows: bool, cut: str) -> Change:
    if narrows:
        return Change(name, old, new, "reassigning", f"exposures {cut} would become invalid")
    return Change(name, old, new, "cosmetic", "the window widens")


def _metrics(before: Definition, after: Definition) -> list[Change]:
    old, new = before.metrics, after.metrics
    note = "the readout changes; the exposures already collected are read with it too"
    changes = [
        Change(f"metrics.{name}", getattr(old, name), getattr(new, name), "analysis", note)
        for name in ("primary", "secondary", "guardrails", "correction")
        if getattr(old, name) != getattr(new, name)
    ]
    for key in sorted(set(old.definitions) & set(new.definitions)):
        was, now = old.definitions[key].canonical(), new.definitions[key].canonical()
        if was != now:
            fields = ", ".join(name for name in was if was[name] != now[name])
            changed = f"its definition changed ({fields}); the readout changes"
            changes.append(Change(f"metrics.{key}", f"r{was['revision']}", f"r{now['revision']}", "analysis", changed))
    return changes


def _other(before: Definition, after: Definition) -> list[Change]:
    kinds: dict[str, tuple[ChangeKind, str]] = {
        "fallback_variant": ("serving", "only units outside the experiment see it; none of them is logged"),
        "attribution_window_ms": ("analysis", "applies to the exposures already collected too"),
        "dedupe": ("analysis", "applies to the exposures already collected too"),
        "dedupe_window_ms": ("analysis", "applies to the exposures already collected too"),
        "title": ("cosmetic", ""),
        "owner": ("cosmetic", ""),
    }
    changes = []
    for name, (kind, note) in kinds.items():
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            shown = name.removesuffix("_ms")
            if name.endswith("_ms"):
                old, new = (None if v is None else format_duration(v) for v in (old, new))
            changes.append(Change(shown, old, new, kind, note))
    return changes


_DIFFS: tuple[Callable[[Definition, Definition], list[Change]], ...] = (
    _state,
    _assignment,
    _scheme_params,
    _variants,
    _window,
    _other,
    _metrics,
)
