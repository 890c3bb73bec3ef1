"""One pass per record over the unit's state: the jobs as pure functions, no Faust, no I/O.

Exposures and events are co-partitioned by unit id, so one agent sees everything a unit did, in order,
and one state entry per unit holds its first exposures (per experiment) and its buffered events.
Running every job in one pass costs one state read and one write per record; Faust's per-message
overhead makes that the dominant cost, so the jobs share the pass instead of re-reading the topics.

A first exposure can be corrected (an earlier one arrives later): buffered events then get a new
AttributedConversion naming the corrected exposure. The latest record per (event, experiment) is the
one that counts, and only while its ``exposure_event_id`` is still the unit's first exposure; the sink
joins on exactly that.

Processing is at-least-once: after a crash, records since the last committed offset are processed
again, while the state may already contain them (the table changelog was flushed before the crash);
after an operator resets the group, every record is. So the state remembers the last offset applied
per source topic (a unit's records all come from one partition, so offsets only grow per unit): a
record at or below it changes nothing and re-emits, from the state alone, what it emitted the first
time that may not have been delivered yet, byte for byte. Nothing a replay emits is computed from the
watermark or the clock of the replay:

- an exposure re-emits its FirstExposure while it is still the first (with the duplicates count it went
  out with), the claims it made on events still buffered, and its variant-switch flag if it raised the
  unit's latest one (with the ``flagged_ts`` kept in the entry); its AssignmentFlag is a function of the
  record (``flagged_ts`` is the exposure's Kafka timestamp);
- an event still buffered re-emits its conversions (a buffered event was never late);
- an event no longer buffered re-emits nothing: it was decided (late on arrival, or out of the buffer)
  and those outputs are ``final``: the agent has them delivered before it stores the state that no
  longer holds the event, so a state that knows the record implies its outputs were delivered.

An event of a unit with no first exposure goes out as ``never_exposed``, late or not: a unit whose
state was deleted (nothing left in it) processes a replayed event as new, against whatever watermark,
and must give the same answer. What stays approximate: a record whose outputs were delivered but whose
state write was lost in a crash is decided again as new, against the restored watermark; and a replay
reaching back further than the state keeps (experiments ended more than ``state_grace_ms`` ago).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from stream_jobs.attributed_conversions import attribute, conversion_record, in_window, unattributed_record
from stream_jobs.first_exposures import first_exposure_record, observe
from stream_jobs.variant_switches import switch_flag

__all__ = ["SETTLED", "ExperimentRules", "Output", "UnitProcessor", "dump_state", "load_state"]

# The role of an Output that goes to no topic: attributed events left the buffer, so no replay re-emits
# their conversions any more; it only tells the agent to have them delivered first (``final``).
SETTLED = "settled"


def load_state(raw: bytes | None) -> dict[str, Any]:
    """A unit's state as the table stores it (compact JSON; orjson: read and written once per record)."""
    return orjson.loads(raw) if raw else {}


def dump_state(state: dict[str, Any]) -> bytes:
    """The bytes ``load_state`` reads back."""
    return orjson.dumps(state)


class Output(NamedTuple):
    """A record to produce: the output's role (its topic), the key (unit id) and the Avro record.

    ``final``: no replay re-emits it, so it must be delivered before the unit's state is stored.
    """

    role: str
    key: str
    record: dict[str, Any]
    final: bool = False


@dataclass(frozen=True)
class ExperimentRules:
    """What the jobs need from an experiment's definition (its latest revision)."""

    attribution_window_ms: int
    dedupe_window_ms: int | None = None
    end_ts: int | None = None


class UnitProcessor:
    """Applies exposures and events to a unit's state (a JSON-able dict) and returns the outputs.

    ``rules(experiment)`` gives an experiment's rules, or None when it is unknown (its exposures are
    still deduplicated, with no attribution window); ``check_assignment(exposure, flagged_ts)``
    re-verifies an exposure and returns an AssignmentFlag record or None.
    """

    def __init__(
        self,
        *,
        rules: Callable[[str], ExperimentRules | None],
        check_assignment: Callable[[dict[str, Any], int], dict[str, Any] | None],
        allowed_lateness_ms: int,
        state_grace_ms: int,
        now_ms: Callable[[], int],
    ) -> None:
        self.rules = rules
        self.check_assignment = check_assignment
        self.allowed_lateness_ms = allowed_lateness_ms
        self.state_grace_ms = state_grace_ms
        self.now_ms = now_ms
        self.health = {"late": 0, "unattributed": 0, "attributed": 0, "replayed": 0}

    # -- exposures -------------------------------------------------------------------------------
    def on_exposure(
        self, state: dict[str, Any], exposure: dict[str, Any], offset: int, watermark: int | None, *, appended_ms: int
    ) -> list[Output]:
        """Apply an exposure; ``appended_ms`` is its Kafka timestamp (an AssignmentFlag's ``flagged_ts``)."""
        replay = offset <= state.get("xo", -1)
        state["xo"] = max(offset, state.get("xo", -1))
        experiments = state.setdefault("x", {})
        key, unit = exposure["experiment"], exposure["unit_id"]
        rules = self.rules(key)
        flag = self.check_assignment(exposure, appended_ms)
        outputs = [Output("assignment_flags", unit, flag)] if flag else []
        if replay:
            self.health["replayed"] += 1
            entry = experiments.get(key)
            duplicates = None if entry is None else _emitted_duplicates(entry, exposure["event_id"])
        else:
            entry, emit = observe(experiments.get(key), exposure, rules.dedupe_window_ms if rules else None)
            experiments[key] = entry
            duplicates = _record_emission(entry, exposure["event_id"]) if emit else None
        if entry is None:
            return outputs
        if duplicates is not None:
            outputs.append(Output("first_exposures", unit, first_exposure_record(exposure, duplicates)))
        if (switch := self._switch(entry, exposure, replay)) is not None:
            outputs.append(Output("variant_switches", unit, switch))
        if duplicates is not None and rules is not None:
            outputs += self._claim_buffered(state, key, entry, rules.attribution_window_ms, replay)
        outputs += self.expire(state, watermark)
        return outputs

    def _switch(self, entry: dict[str, Any], exposure: dict[str, Any], replay: bool) -> dict[str, Any] | None:
        """The variant-switch flag: a new one when live; on a replay, the unit's latest, if this record raised it.

        The latest flag holds every variant seen (each change to them raises a flag), and the entry keeps
        its event id and ``flagged_ts`` (``sf``), so a replay re-emits it as it went out.
        """
        raised = entry.get("sf")
        if replay:
            if raised is None or raised[0] != exposure["event_id"]:
                return None
            return switch_flag(entry, exposure, raised[1])
        flagged_ts = max(self.now_ms(), raised[1] + 1 if raised else 0)  # the latest flag sorts last
        if (switch := switch_flag(entry, exposure, flagged_ts)) is not None:
            entry["sf"] = [exposure["event_id"], flagged_ts]
        return switch

    def _claim_buffered(
        self, state: dict[str, Any], key: str, entry: dict[str, Any], window_ms: int, replay: bool
    ) -> list[Output]:
        """Attribute buffered events to a new or corrected first exposure; on a replay, re-emit its claims."""
        outputs = []
        for pending in state.get("p", []):
            claimed = pending["a"].get(key)
            if replay:
                if claimed != entry["id"]:
                    continue
            elif claimed == entry["id"] or not in_window(entry, pending["ts"], window_ms):
                continue
            else:
                pending["a"][key] = entry["id"]  # an earlier first exposure takes over its events
                self.health["attributed"] += claimed is None
            event = {k: v for k, v in pending.items() if k != "a"}
            outputs.append(
                Output("attributed_conversions", event["unit_id"], conversion_record(event, key, entry, False))
            )
        return outputs

    # -- events ----------------------------------------------------------------------------------
    def on_event(
        self, state: dict[str, Any], event: dict[str, Any], offset: int, watermark: int | None
    ) -> list[Output]:
        replay = offset <= state.get("eo", -1)
        state["eo"] = max(offset, state.get("eo", -1))
        if replay:
            self.health["replayed"] += 1
            return self._reemit_buffered(state, event) + self.expire(state, watermark)
        late = watermark is not None and watermark - event["ts"] > self.allowed_lateness_ms
        experiments = state.get("x", {})
        conversions = attribute(event, experiments, self._windows(experiments), late)
        # A late event is never buffered: its outputs are decided now, for good.
        outputs = [Output("attributed_conversions", event["unit_id"], c, late) for c in conversions]
        self.health["attributed"] += len(conversions)
        self.health["late"] += late
        if not late:
            attributed = {c["experiment"]: c["exposure_event_id"] for c in conversions}
            state.setdefault("p", []).append({**event, "a": attributed})
        elif not conversions:
            self.health["unattributed"] += 1
            outputs.append(self._unattributed(state, event, "late" if experiments else "never_exposed"))
        outputs += self.expire(state, watermark)
        return outputs

    @staticmethod
    def _reemit_buffered(state: Mapping[str, Any], event: dict[str, Any]) -> list[Output]:
        """A replayed event's conversions, if it is still buffered: its claims on the current first exposures.

        An event no longer buffered was decided, and its outputs delivered before the state that says so.
        """
        experiments = state.get("x", {})
        for pending in state.get("p", []):
            if pending["event_id"] != event["event_id"]:
                continue
            buffered = {k: v for k, v in pending.items() if k != "a"}
            return [
                Output("attributed_conversions", event["unit_id"], conversion_record(buffered, key, entry, False))
                for key, exposure_id in pending["a"].items()
                if (entry := experiments.get(key)) is not None and entry["id"] == exposure_id
            ]
        return []

    @staticmethod
    def _unattributed(state: Mapping[str, Any], event: dict[str, Any], reason: str | None) -> Output:
        """An UnattributedEvent (final); with no reason given, the buffer's: was the unit exposed at all."""
        if reason is None:
            reason = "outside_window" if state.get("x") else "never_exposed"
        return Output("unattributed_events", event["unit_id"], unattributed_record(event, reason), True)

    def _windows(self, experiments: Mapping[str, Any]) -> dict[str, int]:
        out = {}
        for key in experiments:
            if (rules := self.rules(key)) is not None:
                out[key] = rules.attribution_window_ms
        return out

    # -- bounded state ---------------------------------------------------------------------------
    def expire(self, state: dict[str, Any], watermark: int | None) -> list[Output]:
        """Drop buffered events past the allowed lateness and experiments ended past the grace period.

        Returns an UnattributedEvent for each dropped event that no exposure claimed, and a ``SETTLED``
        output if claimed ones were dropped. All are final: the caller must see the outputs so far
        delivered before the pruned state is stored, since no replay would re-emit them after that.
        """
        if watermark is None:
            return []
        outputs = []
        cutoff = watermark - self.allowed_lateness_ms
        if pending := state.get("p"):
            dropped = [p for p in pending if p["ts"] < cutoff]
            outputs = [self._unattributed(state, p, None) for p in dropped if not p["a"]]
            self.health["unattributed"] += len(outputs)
            if claimed := [p["event_id"] for p in dropped if p["a"]]:
                outputs.append(Output(SETTLED, dropped[0]["unit_id"], {"event_ids": claimed}, True))
            state["p"] = [p for p in pending if p["ts"] >= cutoff]
        for key in list(state.get("x", {})):
            rules = self.rules(key)
            if rules is not None and rules.end_ts is not None and rules.end_ts + self.state_grace_ms < watermark:
                del state["x"][key]
        return outputs

    def is_empty(self, state: Mapping[str, Any]) -> bool:
        """True when nothing is left worth keeping (the table entry can be deleted)."""
        return not state.get("x") and not state.get("p")


def _record_emission(entry: dict[str, Any], event_id: str) -> int:
    """Remember what a FirstExposure goes out with, so a replay re-emits the same; returns its duplicates.

    The entry's first exposure keeps its count in ``de``; with ``dedupe: window``, the exposure that opened
    the current window (not the entry's ``id``) keeps its own in ``wo``.
    """
    if entry["id"] == event_id:
        entry["de"] = entry["d"]
    else:
        entry["wo"] = [event_id, entry["d"]]
    return int(entry["d"])


def _emitted_duplicates(entry: dict[str, Any], event_id: str) -> int | None:
    """The duplicates count the FirstExposure of ``event_id`` went out with, if it is still current."""
    if entry["id"] == event_id:
        return int(entry.get("de", 0))
    if (opened := entry.get("wo")) is not None and opened[0] == event_id:
        return int(opened[1])
    return None
