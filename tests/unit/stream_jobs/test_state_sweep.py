"""The periodic sweep drops what the jobs would drop on the unit's next record, for units never seen again."""

from __future__ import annotations

import json

from stream_jobs.processor import ExperimentRules, UnitProcessor
from stream_jobs.state_sweep import sweep

HOUR = 3_600_000


def _processor() -> UnitProcessor:
    rules = {"ended": ExperimentRules(attribution_window_ms=HOUR, end_ts=1_000), "live": ExperimentRules(HOUR)}
    return UnitProcessor(
        rules=rules.get, check_assignment=lambda e: None, allowed_lateness_ms=60_000, state_grace_ms=HOUR,
        now_ms=lambda: 0,
    )  # fmt: skip


def _entry(experiments: list[str], pending_ts: list[int] = ()) -> bytes:  # type: ignore[assignment]
    state = {
        "xo": 3,
        "x": {key: {"id": "e", "ts": 0, "v": "A", "r": 1, "ws": 0, "d": 0, "seen": {}} for key in experiments},
        "p": [{"event_id": f"ev{ts}", "ts": ts, "a": {}} for ts in pending_ts],
    }
    return json.dumps(state, separators=(",", ":")).encode()


def test_units_of_ended_experiments_are_deleted_and_live_ones_kept() -> None:
    p = _processor()
    entries = [(b"u-ended", _entry(["ended"])), (b"u-live", _entry(["live"])), (b"u-both", _entry(["ended", "live"]))]

    writes = dict(sweep(entries, expire=p.expire, is_empty=p.is_empty, watermark=1_000 + HOUR + 1))

    assert writes[b"u-ended"] is None
    assert b"u-live" not in writes  # unchanged: nothing to write
    assert set(json.loads(writes[b"u-both"])["x"]) == {"live"}


def test_expired_buffered_events_are_dropped_and_counted() -> None:
    p = _processor()

    writes = dict(sweep([(b"u", _entry([], [0, 100_000]))], expire=p.expire, is_empty=p.is_empty, watermark=150_000))

    assert [e["ts"] for e in json.loads(writes[b"u"])["p"]] == [100_000]
    assert p.health["unattributed"] == 1


def test_nothing_is_swept_before_the_partition_has_a_watermark_or_in_bookkeeping_keys() -> None:
    p = _processor()
    entries = [(b"u-ended", _entry(["ended"])), (b"\x00watermark:Event:0", b"5")]

    assert list(sweep(entries, expire=p.expire, is_empty=p.is_empty, watermark=None)) == []
    assert list(sweep(entries[1:], expire=p.expire, is_empty=p.is_empty, watermark=10**12)) == []
