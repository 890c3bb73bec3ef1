"""Replays re-emit what the first pass emitted, byte for byte, whatever the watermark or the clock then.

Each scenario is a unit's records with the watermark each was applied at. It runs once live; then every
record is applied again, as after a consumer-group reset (the final state, a watermark far on) and as
after a crash (the same state, a watermark restored behind), on a processor whose clock has moved. Every
output of a replay must equal an output of the live pass with the same role and key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from stream_jobs.processor import SETTLED, ExperimentRules, Output, UnitProcessor
from tests.unit.stream_jobs.test_processor import HOUR, event, exposure

MINUTE = 60_000
LATENESS = 10 * MINUTE

# (record, offset on its topic, watermark when applied)
Step = tuple[dict[str, Any], int, int | None]


def _processor(clock: int, dedupe_window_ms: int | None = None) -> UnitProcessor:
    def check(record: dict[str, Any], flagged_ts: int) -> dict[str, Any] | None:
        return {"event_id": record["event_id"], "reason": "variant_mismatch", "flagged_ts": flagged_ts}

    rules = {"exp": ExperimentRules(attribution_window_ms=HOUR, dedupe_window_ms=dedupe_window_ms)}
    return UnitProcessor(
        rules=rules.get, check_assignment=check, allowed_lateness_ms=LATENESS, state_grace_ms=HOUR,
        now_ms=lambda: clock,
    )  # fmt: skip


def _apply(
    p: UnitProcessor, state: dict[str, Any], steps: Iterable[Step], watermark: int | None = None
) -> list[Output]:
    """Apply ``steps``, each at its own watermark, or all at ``watermark`` (a replay's restored one)."""
    out: list[Output] = []
    for record, offset, at in steps:
        mark = at if watermark is None else watermark
        if "client_ts" in record:  # its Kafka timestamp: a little after the client's time
            out += p.on_exposure(state, record, offset, mark, appended_ms=record["client_ts"] + 7)
        else:
            out += p.on_event(state, record, offset, mark)
    return out


def _wire(outputs: Iterable[Output]) -> set[tuple[str, str, bytes]]:
    return {(o.role, o.key, orjson.dumps(o.record, option=orjson.OPT_SORT_KEYS)) for o in outputs if o.role != SETTLED}


def _assert_replays_identical(steps: list[Step], *, dedupe_window_ms: int | None = None) -> set[tuple[str, str, bytes]]:
    state: dict[str, Any] = {}
    first = _wire(_apply(_processor(clock=1_000, dedupe_window_ms=dedupe_window_ms), state, steps))
    final_mark = max(at for _, _, at in steps if at is not None)
    undecided = {p["event_id"] for p in state.get("p", [])}
    # A group reset (the last watermark restored, or one further on), a crash (restored behind), as live.
    for mark in (final_mark, final_mark + 3 * HOUR, final_mark - 1_000, 0, None):
        replayed = copy.deepcopy(state)
        outputs = _apply(_processor(clock=9_999_000, dedupe_window_ms=dedupe_window_ms), replayed, steps, mark)
        # A watermark further on decides events still buffered: first emissions, not re-emissions.
        again = _wire(o for o in outputs if not (o.final and o.record.get("event_id") in undecided))
        assert again <= first, (mark, again - first)
    return first


def test_a_buffered_conversion_is_re_emitted_not_late_under_any_watermark() -> None:
    buffered = event(20 * MINUTE)
    first = _assert_replays_identical([(exposure(0), 0, 0), (buffered, 0, 20 * MINUTE), (event(0), 1, 21 * MINUTE)])

    assert any(role == "attributed_conversions" and buffered["event_id"].encode() in raw for role, _, raw in first)


def test_a_late_conversion_keeps_its_late_flag() -> None:
    late = event(1_000)
    first = _assert_replays_identical(
        [(exposure(0), 0, 0), (event(40 * MINUTE), 0, 40 * MINUTE), (late, 1, 40 * MINUTE)]
    )

    assert any(b'"late":true' in raw for role, _, raw in first if role == "attributed_conversions")


def test_an_event_claimed_out_of_the_buffer_by_a_later_exposure() -> None:
    _assert_replays_identical([(event(5 * MINUTE), 0, 5 * MINUTE), (exposure(0), 0, 6 * MINUTE)])


def test_an_event_outside_every_window_that_left_the_buffer() -> None:
    first = _assert_replays_identical(
        [(exposure(0), 0, 0), (event(2 * HOUR), 0, 2 * HOUR), (event(3 * HOUR), 1, 3 * HOUR)]
    )

    assert any(b'"reason":"outside_window"' in raw for _, _, raw in first)


def test_a_never_exposed_event_stays_never_exposed_once_the_unit_s_state_is_gone() -> None:
    never, p, state = event(0, unit="u9"), _processor(clock=1_000), {}
    first = _wire(_apply(p, state, [(never, 0, 0), (event(30 * MINUTE, unit="u9"), 1, 30 * MINUTE)]))
    first |= _wire(p.expire(state, HOUR))  # a sweep decides the other one
    assert p.is_empty(state)  # both decided: the table entry is deleted

    again = _wire(_apply(_processor(clock=5_000), {}, [(never, 0, None)], 3 * HOUR))  # a reset replays it as new

    assert again and again <= first


def test_corrections_duplicates_and_the_dedupe_window_re_emit_their_first_exposures_as_they_went_out() -> None:
    a, b, c = exposure(5 * MINUTE), exposure(MINUTE), exposure(3 * MINUTE)
    steps: list[Step] = [(a, 0, 5 * MINUTE), (b, 1, 5 * MINUTE), (c, 2, 5 * MINUTE), (exposure(HOUR * 2), 3, 2 * HOUR)]
    first = _assert_replays_identical(steps, dedupe_window_ms=HOUR)

    assert sum(role == "first_exposures" for role, _, _ in first) == 3  # a, b correcting it, the new window's


def test_variant_switch_and_assignment_flags_keep_their_flagged_ts() -> None:
    steps: list[Step] = [
        (exposure(0, "A"), 0, 0),
        (exposure(MINUTE, "B"), 1, MINUTE),
        (exposure(2 * MINUTE, "C"), 2, 0),
    ]
    first = _assert_replays_identical(steps)

    assert sum(role == "variant_switches" for role, _, _ in first) == 2


@pytest.mark.parametrize("watermark", [None, 0, 50 * MINUTE])
def test_a_replay_re_emits_what_an_undelivered_first_pass_needs(watermark: int | None) -> None:
    """After a crash the state may know records whose outputs were never delivered: those that are not
    final (first exposures, conversions of buffered events) come out again."""
    ev = event(2 * MINUTE)
    steps: list[Step] = [(exposure(0), 0, 0), (ev, 0, 2 * MINUTE)]
    state: dict[str, Any] = {}
    first = _apply(_processor(clock=1_000), state, steps)

    again = _apply(_processor(clock=2_000), state, steps, watermark)

    assert not any(o.final for o in first)
    assert _wire(again) >= {w for w in _wire(first) if w[0] in ("first_exposures", "attributed_conversions")}
