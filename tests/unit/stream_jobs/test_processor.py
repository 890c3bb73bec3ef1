"""The jobs' per-unit logic, without Faust: dedupe, switches, attribution, replays, bounded state."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from stream_jobs.first_exposures import observe
from stream_jobs.processor import ExperimentRules, Output, UnitProcessor

HOUR = 3_600_000


def exposure(
    ts: int, variant: str = "A", *, event_id: str | None = None, unit: str = "u1", key: str = "exp"
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()), "experiment": key, "revision": 1, "variant": variant,
        "unit_type": "user_id", "unit_id": unit, "client_ts": ts, "source": {}, "params": {}, "context": {},
    }  # fmt: skip


def event(ts: int, unit: str = "u1") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "unit_type": "user_id", "unit_id": unit, "name": "buy", "value": 2.0,
        "ts": ts, "properties": {}, "source": {},
    }  # fmt: skip


def processor(**rules: ExperimentRules) -> UnitProcessor:
    table = rules or {"exp": ExperimentRules(attribution_window_ms=HOUR)}
    return UnitProcessor(
        rules=table.get, check_assignment=lambda e, ts: None, allowed_lateness_ms=10 * 60_000,
        state_grace_ms=HOUR, now_ms=lambda: 0,
    )  # fmt: skip


def expose(
    p: UnitProcessor, state: dict[str, Any], record: dict[str, Any], offset: int, watermark: int | None
) -> list[Output]:
    return p.on_exposure(state, record, offset, watermark, appended_ms=record["client_ts"] + 5)


def roles(outputs: list) -> list[str]:
    return [o.role for o in outputs]


def test_the_first_exposure_is_emitted_once_and_duplicates_are_counted() -> None:
    p, state = processor(), {}
    first = exposure(100)

    assert roles(expose(p, state, first, 0, 100)) == ["first_exposures"]
    assert expose(p, state, exposure(200), 1, 200) == []
    assert expose(p, state, dict(first), 2, 200) == []  # a retry, same event id
    assert state["x"]["exp"]["d"] == 1


def test_an_earlier_exposure_arriving_later_corrects_the_first() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(500), 0, 500)
    earlier = exposure(100)

    out = expose(p, state, earlier, 1, 500)

    assert [o.record["event_id"] for o in out if o.role == "first_exposures"] == [earlier["event_id"]]
    assert state["x"]["exp"]["ts"] == 100


def test_ties_in_time_are_broken_by_event_id() -> None:
    a = exposure(100, event_id="00000000-0000-4000-8000-000000000002")
    b = exposure(100, event_id="00000000-0000-4000-8000-000000000001")
    entry, _ = observe(None, a, None)

    entry, emit = observe(entry, b, None)

    assert emit and entry["id"] == b["event_id"]


def test_window_dedupe_opens_a_new_first_exposure_after_the_window() -> None:
    p, state = processor(exp=ExperimentRules(attribution_window_ms=HOUR, dedupe_window_ms=1000)), {}
    expose(p, state, exposure(0), 0, 0)

    assert expose(p, state, exposure(999), 1, 999) == []
    assert roles(expose(p, state, exposure(1000), 2, 1000)) == ["first_exposures"]


def test_a_second_variant_is_flagged_with_all_variants_in_order() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(100, "A"), 0, 100)

    out = expose(p, state, exposure(200, "B"), 1, 200)

    (flag,) = [o.record for o in out if o.role == "variant_switches"]
    assert flag["reason"] == "multiple_variants" and flag["variants_seen"] == ["A", "B"]


def test_events_in_the_window_are_attributed_and_outside_it_are_not() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(1000), 0, 1000)

    inside = p.on_event(state, event(1000 + HOUR), 0, 1000)
    before = p.on_event(state, event(999), 1, 1000)
    after = p.on_event(state, event(1001 + HOUR), 2, 1000)

    assert roles(inside) == ["attributed_conversions"] and inside[0].record["latency_ms"] == HOUR
    assert before == [] and after == []


def test_an_event_before_its_exposure_is_buffered_then_claimed() -> None:
    p, state = processor(), {}
    ev = event(2000)
    assert p.on_event(state, ev, 0, None) == []

    out = expose(p, state, exposure(1500), 0, 2000)

    (conversion,) = [o.record for o in out if o.role == "attributed_conversions"]
    assert conversion["event_id"] == ev["event_id"] and not conversion["late"]


def test_a_corrected_first_exposure_takes_over_its_events() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(1500), 0, 1500)
    p.on_event(state, event(2000), 0, 1500)
    earlier = exposure(1000)

    out = expose(p, state, earlier, 1, 2000)

    (conversion,) = [o.record for o in out if o.role == "attributed_conversions"]
    assert conversion["exposure_event_id"] == earlier["event_id"]


def test_late_events_are_flagged_and_expired_unattributed_ones_go_out_with_the_reason() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(0), 0, 0)
    late = p.on_event(state, event(10), 0, 11 * 60_000)
    outside = event(HOUR * 5)
    assert p.on_event(state, outside, 1, HOUR * 5) == []  # outside the window: buffered, undecided yet

    out = expose(p, state, exposure(HOUR * 6, key="other"), 1, HOUR * 6)  # the watermark moves on

    assert late[0].record["late"] is True and p.health["late"] == 1
    (unattributed,) = [o for o in out if o.role == "unattributed_events"]
    assert unattributed.record == {**outside, "received_ts": None, "reason": "outside_window"}
    assert p.health["unattributed"] == 1 and state["p"] == []


def test_a_late_event_no_exposure_holds_is_unattributed_at_once_and_never_buffered() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(HOUR * 3), 0, HOUR * 3)
    ev = event(10)

    (out,) = p.on_event(state, ev, 0, HOUR * 3)

    assert (out.role, out.key, out.record["reason"], out.record["event_id"], out.final) == (
        "unattributed_events", "u1", "late", ev["event_id"], True,
    )  # fmt: skip
    assert state.get("p", []) == []


def test_a_late_event_of_a_unit_never_exposed_is_never_exposed() -> None:
    p, state = processor(), {}

    (out,) = p.on_event(state, event(10, unit="u9"), 0, 11 * 60_000)

    assert (out.key, out.record["reason"]) == ("u9", "never_exposed")
    assert p.is_empty(state)  # and, being empty, the unit's state is deleted: a replay finds nothing


def test_events_of_a_unit_never_exposed_wait_their_lateness_then_go_out_unattributed() -> None:
    p, state = processor(), {}
    first, second = event(0), event(5 * 60_000)
    assert p.on_event(state, first, 0, 0) == []
    assert p.on_event(state, second, 1, 9 * 60_000) == []  # within the allowed lateness (10 minutes)

    out = p.on_event(state, event(20 * 60_000), 2, 20 * 60_000)

    assert [(o.record["event_id"], o.record["reason"]) for o in out] == [
        (first["event_id"], "never_exposed"), (second["event_id"], "never_exposed"),
    ]  # fmt: skip


def test_an_exposure_arriving_within_the_lateness_claims_the_event_instead() -> None:
    p, state = processor(), {}
    p.on_event(state, event(1_000), 0, 0)
    claimed = expose(p, state, exposure(500), 0, 500)

    later = expose(p, state, exposure(HOUR * 2, key="other"), 1, HOUR * 2)

    assert roles(claimed) == ["first_exposures", "attributed_conversions"]
    assert "unattributed_events" not in roles(later) and state["p"] == []


def test_a_replayed_event_re_emits_its_buffered_conversions_but_not_a_decision() -> None:
    p, state = processor(), {}
    expose(p, state, exposure(0), 0, 0)
    buffered, late = event(30 * 60_000), event(10)
    claimed = p.on_event(state, buffered, 0, 30 * 60_000)
    decided = p.on_event(state, late, 1, 30 * 60_000)

    assert p.on_event(state, buffered, 0, 30 * 60_000) == claimed  # redelivered after a crash
    assert p.on_event(state, late, 1, 30 * 60_000) == []  # its outputs were final: delivered before the state
    assert [o.final for o in decided] == [True] and decided[0].record["late"]
    assert p.health["late"] == 1


def test_a_replayed_record_changes_nothing_and_re_emits_the_same_outputs() -> None:
    p, state = processor(), {}
    ev, first = event(2000), exposure(1500)
    p.on_event(state, ev, 0, None)
    original = expose(p, state, first, 0, 2000)
    expose(p, state, exposure(1600), 1, 2000)
    before = copy.deepcopy(state)

    again = expose(p, state, first, 0, 2000)  # redelivered after a crash

    assert state == before
    assert again == original


def test_state_of_ended_experiments_is_dropped_after_the_grace_period() -> None:
    p, state = processor(exp=ExperimentRules(attribution_window_ms=HOUR, end_ts=1000)), {}
    expose(p, state, exposure(0), 0, 0)

    p.on_event(state, event(5000), 0, 1000 + HOUR + 1)

    assert "exp" not in state["x"]


@pytest.mark.parametrize("missing", ["exposures", "events"])
def test_no_watermark_no_expiry(missing: str) -> None:
    p, state = processor(), {}
    p.on_event(state, event(0), 0, None)

    assert len(state["p"]) == 1
