"""The batch ledger in ClickHouse (``sink_batches``): each batch's range, written before its insert,
and that its rows are in, written after.

Living next to the data, it is seen by every sink instance that shares the store, so a partition
that moves to another instance on a rebalance is re-batched on the same boundaries, and a range
replayed after its insert completed is not inserted again.
"""

from __future__ import annotations

from typing import Any

from sinks.batching import Batch, Plan

__all__ = ["BatchLedger"]

_PLANS = """
SELECT first_offset, argMax(last_offset, planned_at), max(inserted_token)
FROM sink_batches
WHERE topic = {topic:String} AND partition = {partition:UInt32} AND first_offset >= {start:UInt64}
GROUP BY first_offset
ORDER BY first_offset
LIMIT {limit:UInt32}
"""
_COLUMNS = ["topic", "partition", "first_offset", "last_offset", "rows", "dead_letters", "token", "inserted_token"]


class BatchLedger:
    """Records batch ranges and reads back the ones ahead of a partition's position."""

    def __init__(self, client: Any, *, page: int = 1000) -> None:
        self._client = client
        self._page = page

    def plans(self, topic: str, partition: int, start: int) -> tuple[list[Plan], bool]:
        """Recorded ranges starting at or after ``start``, in order; True when there are no more."""
        params = {"topic": topic, "partition": partition, "start": start, "limit": self._page}
        rows = self._client.query(_PLANS, parameters=params).result_rows
        return [Plan(int(first), int(last), str(inserted)) for first, last, inserted in rows], len(rows) < self._page

    def record(self, batches: list[Batch]) -> None:
        """Write the batches' ranges in one insert; must succeed before any of them is inserted."""
        self._insert([_row(b, inserted=False) for b in batches])

    def record_inserted(self, batch: Batch) -> None:
        """Record that ``batch``'s rows are in; must succeed before its offset is committed."""
        self._insert([_row(batch, inserted=True)])

    def _insert(self, rows: list[list[Any]]) -> None:
        self._client.insert("sink_batches", rows, column_names=_COLUMNS, settings={"async_insert": 0})


def _row(b: Batch, *, inserted: bool) -> list[Any]:
    token = b.token
    return [
        b.topic,
        b.partition,
        b.first_offset,
        b.last_offset,
        len(b.rows),
        len(b.dead),
        token,
        token if inserted else "",
    ]
