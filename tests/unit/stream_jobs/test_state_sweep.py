"""The periodic sweep drops what the jobs would drop on the unit's next record, for units never seen again."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import rocksdict
from faust.stores.rocksdb import Store

from stream_jobs.processor import ExperimentRules, UnitProcessor
from stream_jobs.state_sweep import Entries, PartitionSweeper, Swept, store_entries, sweep

HOUR = 3_600_000


def _processor() -> UnitProcessor:
    rules = {"ended": ExperimentRules(attribution_window_ms=HOUR, end_ts=1_000), "live": ExperimentRules(HOUR)}
    return UnitProcessor(
        rules=rules.get, check_assignment=lambda e, ts: None, allowed_lateness_ms=60_000, state_grace_ms=HOUR,
        now_ms=lambda: 0,
    )  # fmt: skip


def _entry(experiments: list[str], pending_ts: list[int] = ()) -> bytes:  # type: ignore[assignment]
    state = {
        "xo": 3,
        "x": {key: {"id": "e", "ts": 0, "v": "A", "r": 1, "ws": 0, "d": 0, "seen": {}} for key in experiments},
        "p": [{"event_id": f"ev{ts}", "unit_id": "u", "ts": ts, "a": {}} for ts in pending_ts],
    }
    return json.dumps(state, separators=(",", ":")).encode()


def _sweep(entries: list[tuple[bytes, bytes]], p: UnitProcessor, watermark: int | None) -> Swept:
    return sweep(entries, expire=p.expire, is_empty=p.is_empty, watermark=watermark, into=Swept(0))


def _run(sweeper: PartitionSweeper, watermark: int | None) -> Swept:
    swept = sweeper.plan(0, watermark)
    sweeper.store(swept)
    return swept


def test_units_of_ended_experiments_are_deleted_and_live_ones_kept() -> None:
    p = _processor()
    entries = [(b"u-ended", _entry(["ended"])), (b"u-live", _entry(["live"])), (b"u-both", _entry(["ended", "live"]))]

    writes = dict(_sweep(entries, p, 1_000 + HOUR + 1).writes)

    assert writes[b"u-ended"] is None
    assert b"u-live" not in writes  # unchanged: nothing to write
    assert set(json.loads(writes[b"u-both"])["x"]) == {"live"}


def test_expired_buffered_events_are_dropped_and_go_out_unattributed() -> None:
    p = _processor()
    entries = [(b"u", _entry([], [0, 100_000])), (b"v", _entry(["live"], [-5]))]  # v: before its first exposure

    swept = _sweep(entries, p, 150_000)

    assert [e["ts"] for e in json.loads(dict(swept.writes)[b"u"])["p"]] == [100_000]
    assert [(o.role, o.record["event_id"], o.record["reason"]) for o in swept.outputs] == [
        ("unattributed_events", "ev0", "never_exposed"),
        ("unattributed_events", "ev-5", "outside_window"),
    ]
    assert p.health["unattributed"] == 2


def test_nothing_is_swept_before_the_partition_has_a_watermark_or_in_bookkeeping_keys() -> None:
    p = _processor()
    entries = [(b"u-ended", _entry(["ended"])), (b"\x00watermark:Event:0", b"5")]

    assert _sweep(entries, p, None).writes == []
    assert _sweep(entries[1:], p, 10**12).writes == []


# -- slices of a partition ---------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sorted_from(table: dict[bytes, bytes]) -> Entries:
    """A partition as RocksDB iterates it: in key order, from a key on."""
    return lambda partition, start: sorted(kv for kv in table.items() if start is None or kv[0] >= start)


def _sweeper(table: dict[bytes, bytes], entries: Entries, clock: _Clock, batch: int = 4) -> PartitionSweeper:
    p = _processor()
    return PartitionSweeper(
        entries=entries, table=table, expire=p.expire, is_empty=p.is_empty, batch=batch, interval_s=60.0, clock=clock,
    )  # fmt: skip


def test_a_big_partition_is_walked_a_slice_at_a_time_and_then_from_the_start_again() -> None:
    table = {f"u-ended-{i:02}".encode(): _entry(["ended"]) for i in range(10)} | {b"\x00watermark:Event:0": b"5"}
    table |= {f"a-live-{i}".encode(): _entry(["live"]) for i in range(3)}  # first in key order
    clock = _Clock()
    sweeper = _sweeper(table, _sorted_from(table), clock)
    after_end = 1_000 + HOUR + 1

    for _ in range(4):  # 14 entries, 4 a slice
        _run(sweeper, after_end)
        clock.now += 60
    assert sorted(table) == [b"\x00watermark:Event:0", b"a-live-0", b"a-live-1", b"a-live-2"]

    table[b"u-ended-00"] = _entry(["ended"])  # behind the cursor: found when the walk starts over
    for _ in range(2):
        _run(sweeper, after_end)
        clock.now += 60
    assert b"u-ended-00" not in table


def test_a_partition_is_swept_at_most_once_per_interval_each_on_its_own_clock() -> None:
    clock = _Clock()
    sweeper = _sweeper({}, _sorted_from({}), clock)

    _run(sweeper, 10**12)

    assert not sweeper.due(0)
    assert sweeper.due(1)
    clock.now += 60
    assert sweeper.due(0)


def test_without_a_watermark_nothing_is_swept_and_the_partition_stays_due() -> None:
    table = {b"u-ended": _entry(["ended"])}
    sweeper = _sweeper(table, _sorted_from(table), _Clock())

    _run(sweeper, None)

    assert b"u-ended" in table
    assert sweeper.due(0)


def test_a_rocksdb_partition_is_walked_from_the_cursor_on_without_faust_s_offset_key(tmp_path: Path) -> None:
    options = rocksdict.Options(raw_mode=True)  # as faust opens its stores
    options.create_if_missing(True)
    db = rocksdict.Rdict(str(tmp_path / "units-0.db"), options=options)
    stored = {key: _entry(["ended"]) for key in (b"t", b"u", b"u\x00", b"u0", b"ub")} | {Store.offset_key: b"42"}
    for key, value in stored.items():
        db[key] = value
    faust_table = SimpleNamespace(data=SimpleNamespace(_db_for_partition={0: db}.get, offset_key=Store.offset_key))
    clock = _Clock()
    sweeper = _sweeper(stored, store_entries(faust_table), clock, batch=2)  # the first slice ends at b"u"

    for _ in range(3):
        _run(sweeper, 1_000 + HOUR + 1)
        clock.now += 60
    db.close()

    assert stored == {Store.offset_key: b"42"}
