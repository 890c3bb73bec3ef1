"""Batch formation per partition: pure logic, so every boundary rule is checked directly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from abstream.errors import DecodeError
from sinks.batching import Entry, PartitionBuffer, Plan, batch_token


def entry(offset: int, value: bytes | None = None) -> Entry:
    return Entry(offset, b"k", value if value is not None else f"v{offset}".encode(), ("row", offset), None)


def buffer_with(offsets: range, plans: list[Plan] | None = None, complete: bool = True) -> PartitionBuffer:
    buffer = PartitionBuffer("t", 3)
    for offset in offsets:
        buffer.add(entry(offset), now=0.0)
    if plans is not None:
        buffer.load_plans(plans, complete=complete)
    return buffer


def test_the_token_names_the_range_and_digests_the_bytes() -> None:
    values = [b"a", b"bc"]

    token = batch_token("topic", 2, 10, 11, values)

    assert token.startswith("topic/2/10-11/")
    assert token == batch_token("topic", 2, 10, 11, list(values))
    assert token != batch_token("topic", 2, 10, 11, [b"ab", b"c"])  # lengths are part of the digest
    assert token != batch_token("topic", 2, 10, 11, [b"a", b"bd"])  # a recreated topic reusing offsets


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=10))
def test_the_token_is_a_function_of_the_records_only(values: list[bytes]) -> None:
    assert batch_token("t", 0, 0, len(values) - 1, values) == batch_token("t", 0, 0, len(values) - 1, values[:])


def test_a_new_batch_is_cut_at_max_rows() -> None:
    batch = buffer_with(range(100, 110), plans=[]).next_batch(max_rows=4)

    assert batch is not None and (batch.first_offset, batch.last_offset, batch.planned) == (100, 103, False)
    assert batch.rows == [("row", o) for o in range(100, 104)]


def test_a_recorded_range_is_replayed_exactly_even_when_more_records_wait() -> None:
    batch = buffer_with(range(100, 130), plans=[Plan(100, 104), Plan(105, 120)]).next_batch(max_rows=5000)

    assert batch is not None and (batch.first_offset, batch.last_offset, batch.planned) == (100, 104, True)


def test_a_recorded_range_waits_for_its_last_record() -> None:
    buffer = buffer_with(range(100, 103), plans=[Plan(100, 104)])

    assert buffer.next_batch(max_rows=5000) is None
    buffer.add(entry(103), now=1.0)
    buffer.add(entry(104), now=1.0)
    batch = buffer.next_batch(max_rows=5000)
    assert batch is not None and batch.last_offset == 104


def test_at_the_end_of_the_partition_a_recorded_range_takes_what_is_left() -> None:
    buffer = buffer_with(range(100, 103), plans=[Plan(100, 104)])  # 103, 104 compacted away
    buffer.at_end = True

    batch = buffer.next_batch(max_rows=5000)

    assert batch is not None and (batch.first_offset, batch.last_offset, len(batch.entries)) == (100, 104, 3)


def test_a_new_batch_stops_before_the_next_recorded_range() -> None:
    # After a reset to offset 95, which no recorded batch starts at, batches snap back onto the ledger.
    buffer = buffer_with(range(95, 130), plans=[Plan(90, 99), Plan(100, 104)])

    batch = buffer.next_batch(max_rows=5000)

    assert batch is not None and (batch.first_offset, batch.last_offset, batch.planned) == (95, 99, False)


def test_drop_through_forgets_committed_records_and_plans() -> None:
    buffer = buffer_with(range(100, 110), plans=[Plan(100, 104), Plan(105, 109)])

    buffer.drop_through(104, now=5.0)

    assert [e.offset for e in buffer.entries] == list(range(105, 110))
    assert list(buffer.plans or []) == [Plan(105, 109)]
    assert buffer.started_at == 5.0


def test_a_remembered_plan_makes_the_retry_form_the_same_range() -> None:
    buffer = buffer_with(range(100, 103), plans=[])
    first = buffer.next_batch(max_rows=5000)
    assert first is not None
    buffer.remember(first)
    buffer.add(entry(103), now=1.0)  # arrives while the insert is failing

    retry = buffer.next_batch(max_rows=5000)

    assert retry is not None and (retry.first_offset, retry.last_offset, retry.token) == (100, 102, first.token)


def test_due_by_size_or_by_age_and_not_during_backoff() -> None:
    buffer = buffer_with(range(3))

    assert not buffer.due(0.5, max_rows=10, interval=1.0)
    assert buffer.due(1.0, max_rows=10, interval=1.0)
    assert buffer.due(0.0, max_rows=3, interval=1.0)
    buffer.retry_at = 5.0
    assert not buffer.due(4.0, max_rows=3, interval=1.0)
    assert not PartitionBuffer("t", 0).due(9.0, max_rows=1, interval=0.0)


def test_plans_are_fetched_once_unless_the_ledger_had_more() -> None:
    buffer = buffer_with(range(3))
    assert buffer.needs_plans()
    buffer.load_plans([], complete=True)
    assert not buffer.needs_plans()
    buffer.load_plans([], complete=False)
    assert buffer.needs_plans()


def test_dead_entries_are_kept_apart_from_rows() -> None:
    buffer = buffer_with(range(2), plans=[])
    buffer.add(Entry(2, None, b"junk", None, DecodeError("bad", raw=b"junk", kind="bad_magic")), now=0.0)

    batch = buffer.next_batch(max_rows=10)

    assert batch is not None and len(batch.rows) == 2 and [e.offset for e in batch.dead] == [2]
