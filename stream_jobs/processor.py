"""One pass per record over the unit's state: the jobs as pure functions, no Faust, no I/O.

Exposures and events are co-partitioned by unit id, so one agent sees everything a unit did, in order,
and one state entry per unit holds its first exposures (per experiment) and its buffered events.
Running every job in one pass costs one state read and one write per record; Faust's per-message
overhead makes that the dominant cost, so the jobs share the pass instead of re-reading the topics.

A first exposure can be corrected (an earlier one arrives later): buffered events then get a new
AttributedConversion naming the corrected exposure. The latest record per (event, experiment) is the
one that counts, and only while its ``exposure_event_id`` is still the unit's first exposure; the sink
joins on exactly that.

A replayed event's ``late`` flag is computed against the watermark restored at the replay, which may be
further on than the first time: a re-emitted conversion can carry ``late=true`` (a health flag only; it is
attributed the same).

Processing is at-least-once: after a crash, records since the last committed offset are processed
again, while the state may already contain them (the table changelog was flushed before the crash).
So the state remembers the last offset applied per source topic (a unit's records all come from one
partition, so offsets only grow per unit): a record at or below it changes nothing and only re-emits
the outputs it produced the first time. Outputs are deterministic and keyed, so a re-emitted record is
an identical duplicate that the sink absorbs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from stream_jobs.attributed_conversions import attribute, conversion_record, in_window, unattributed_record
from stream_jobs.first_exposures import first_exposure_record, observe
from stream_jobs.variant_switches import switch_flag

__all__ = ["ExperimentRules", "Output", "UnitProcessor", "dump_state", "load_state"]


def load_state(raw: bytes | None) -> dict[str, Any]:
    """A unit's state as the table stores it (compact JSON; orjson: read and written once per record)."""
    return orjson.loads(raw) if raw else {}


def dump_state(state: dict[str, Any]) -> bytes:
    """The bytes ``load_state`` reads back."""
    return orjson.dumps(state)


class Output(NamedTuple):
    """A record to produce: the output's role (its topic), the key (unit id) and the Avro record."""

    role: str
    key: str
    record: dict[str, Any]


@dataclass(frozen=True)
class ExperimentRules:
    """What the jobs need from an experiment's definition (its latest revision)."""

    attribution_window_ms: int
    dedupe_window_ms: int | None = None
    end_ts: int | None = None


class UnitProcessor:
    """Applies exposures and events to a unit's state (a JSON-able dict) and returns the outputs.

    ``rules(experiment)`` gives an experiment's rules, or None when it is unknown (its exposures are
    still deduplicated, with no attribution window); ``check_assignment(exposure)`` re-verifies an
    exposure and returns an AssignmentFlag record or None.
    """

    def __init__(
        self,
        *,
        rules: Callable[[str], ExperimentRules | None],
        check_assignment: Callable[[dict[str, Any]], dict[str, Any] | None],
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
        self, state: dict[str, Any], exposure: dict[str, Any], offset: int, watermark: int | None
    ) -> list[Output]:
        replay = offset <= state.get("xo", -1)
        state["xo"] = max(offset, state.get("xo", -1))
        experiments = state.setdefault("x", {})
        key = exposure["experiment"]
        rules = self.rules(key)
        outputs = (
            [Output("assignment_flags", exposure["unit_id"], flag)] if (flag := self.check_assignment(exposure)) else []
        )
        if replay:
            self.health["replayed"] += 1
            entry, emit = experiments.get(key), False
            if entry is not None and entry["id"] == exposure["event_id"]:
                emit = True  # re-emit what this record emitted the first time
        else:
            entry, emit = observe(experiments.get(key), exposure, rules.dedupe_window_ms if rules else None)
            experiments[key] = entry
        if entry is None:
            return outputs
        if emit:
            if not replay:
                entry["de"] = entry["d"]  # the count it goes out with: a replay re-emits the same record
            record = first_exposure_record(exposure, entry.get("de", 0))
            outputs.append(Output("first_exposures", exposure["unit_id"], record))
        if (switch := switch_flag(entry, exposure, self.now_ms())) is not None:
            outputs.append(Output("variant_switches", exposure["unit_id"], switch))
        if emit and rules is not None:
            outputs += self._claim_buffered(state, key, entry, rules.attribution_window_ms, replay)
        outputs += self.expire(state, watermark)
        return outputs

    def _claim_buffered(
        self, state: dict[str, Any], key: str, entry: dict[str, Any], window_ms: int, replay: bool
    ) -> list[Output]:
        """Attribute buffered events to a new or corrected first exposure; on a replay, re-emit its claims."""
        outputs = []
        for pending in state.get("p", []):
            if not in_window(entry, pending["ts"], window_ms):
                continue
            claimed = pending["a"].get(key)
            if (claimed == entry["id"]) != replay:  # new claims when live, only our own on a replay
                continue
            if not replay:
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
        late = watermark is not None and watermark - event["ts"] > self.allowed_lateness_ms
        windows = self._windows(state.get("x", {}))
        conversions = attribute(event, state.get("x", {}), windows, late)
        outputs = [Output("attributed_conversions", event["unit_id"], c) for c in conversions]
        if replay:
            self.health["replayed"] += 1
            if not conversions and not any(p["event_id"] == event["event_id"] for p in state.get("p", [])):
                # Decided the first time (late, or left the buffer since): re-emit the decision.
                outputs.append(self._unattributed(state, event, "late" if late else None))
        else:
            self.health["attributed"] += len(conversions)
            self.health["late"] += late
            if not late:
                attributed = {c["experiment"]: c["exposure_event_id"] for c in conversions}
                state.setdefault("p", []).append({**event, "a": attributed})
            elif not conversions:
                self.health["unattributed"] += 1
                outputs.append(self._unattributed(state, event, "late"))
        outputs += self.expire(state, watermark)
        return outputs

    @staticmethod
    def _unattributed(state: Mapping[str, Any], event: dict[str, Any], reason: str | None) -> Output:
        """An UnattributedEvent; with no reason given, the buffer's: was the unit exposed at all."""
        if reason is None:
            reason = "outside_window" if state.get("x") else "never_exposed"
        return Output("unattributed_events", event["unit_id"], unattributed_record(event, reason))

    def _windows(self, experiments: Mapping[str, Any]) -> dict[str, int]:
        out = {}
        for key in experiments:
            if (rules := self.rules(key)) is not None:
                out[key] = rules.attribution_window_ms
        return out

    # -- bounded state ---------------------------------------------------------------------------
    def expire(self, state: dict[str, Any], watermark: int | None) -> list[Output]:
        """Drop buffered events past the allowed lateness and experiments ended past the grace period.

        Returns an UnattributedEvent for each dropped event that no exposure claimed. The caller must
        see them delivered before the pruned state is stored: nothing would re-emit them after that.
        """
        if watermark is None:
            return []
        outputs = []
        cutoff = watermark - self.allowed_lateness_ms
        if pending := state.get("p"):
            outputs = [self._unattributed(state, p, None) for p in pending if p["ts"] < cutoff and not p["a"]]
            self.health["unattributed"] += len(outputs)
            state["p"] = [p for p in pending if p["ts"] >= cutoff]
        for key in list(state.get("x", {})):
            rules = self.rules(key)
            if rules is not None and rules.end_ts is not None and rules.end_ts + self.state_grace_ms < watermark:
                del state["x"][key]
        return outputs

    def is_empty(self, state: Mapping[str, Any]) -> bool:
        """True when nothing is left worth keeping (the table entry can be deleted)."""
        return not state.get("x") and not state.get("p")
