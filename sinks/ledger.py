"""The batch ledger in ClickHouse (``sink_batches``): each batch's range, written before its insert.

Living next to the data, it is seen by every sink instance that shares the store, so a partition
that moves to another instance on a rebalance is re-batched on the same boundaries.
"""

from __future__ import annotations

from typing import Any

from sinks.batching import Batch, Plan

__all__ = ["BatchLedger"]

_PLANS = """
SELECT first_offset, argMax(last_offset, planned_at)
FROM sink_batches
WHERE topic = {topic:String} AND partition = {partition:UInt32} AND first_offset >= {start:UInt64}
GROUP BY first_offset
ORDER BY first_offset
LIMIT {limit:UInt32}
"""
_COLUMNS = ["topic", "partition", "first_offset", "last_offset", "rows", "dead_letters", "token"]


class BatchLedger:
    """Records batch ranges and reads back the ones ahead of a partition's position."""

    def __init__(self, client: Any, *, page: int = 1000) -> None:
        self._client = client
        self._page = page

    def plans(self, topic: str, partition: int, start: int) -> tuple[list[Plan], bool]:
        """Recorded ranges starting at or after ``start``, in order; True when there are no more."""
        params = {"topic": topic, "partition": partition, "start": start, "limit": self._page}
        rows = self._client.query(_PLANS, parameters=params).result_rows
        return [Plan(int(first), int(last)) for first, last in rows], len(rows) < self._page

    def record(self, batches: list[Batch]) -> None:
        """Write the batches' ranges in one insert; must succeed before any of them is inserted."""
        rows = [
            [b.topic, b.partition, b.first_offset, b.last_offset, len(b.rows), len(b.dead), b.token] for b in batches
        ]
        self._client.insert("sink_batches", rows, column_names=_COLUMNS, settings={"async_insert": 0})
