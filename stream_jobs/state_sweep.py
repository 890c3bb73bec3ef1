"""Bounded state: a periodic sweep over the units table, so units never seen again are dropped too.

Applying a record already prunes that unit's state (buffered events past the allowed lateness,
experiments ended longer ago than the grace period). A unit that is never seen again would keep its
entry forever, so the agent also sweeps each partition it reads, at most every ``sweep_interval_s``:
a ``PartitionSweeper`` slice reads up to ``sweep_batch`` entries from where the last slice stopped and
applies the same pruning against that partition's watermark; an entry left empty is deleted (a
changelog tombstone). Slices keep a big table from stalling the agent, which runs them between batches
of records, because Faust table writes must happen while a record of the same partition is current.

Pruning decides buffered events that no exposure claimed: their UnattributedEvent records come with
the slice, and the agent has them delivered before it stores the slice, since the stored state no
longer holds them (``PartitionSweeper.plan``, then ``store``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from stream_jobs.processor import Output, dump_state, load_state

__all__ = ["Entries", "PartitionSweeper", "Swept", "store_entries", "sweep"]

log = logging.getLogger("abstream.stream_jobs")

# A partition's (key, value) entries in key order, from a key on (None: from the first).
Entries = Callable[[int, bytes | None], Iterable[tuple[bytes, bytes]]]


@dataclass
class Swept:
    """A slice's result: the (key, new value) writes, None meaning delete, and the outputs it decided."""

    partition: int
    read: int = 0
    writes: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)


def sweep(
    entries: Iterable[tuple[bytes, bytes]],
    *,
    expire: Callable[[dict[str, Any], int | None], list[Output]],
    is_empty: Callable[[dict[str, Any]], bool],
    watermark: int | None,
    into: Swept,
) -> Swept:
    """Prune every entry against ``watermark`` into ``into``; unchanged entries are not written."""
    if watermark is None:
        return into
    for key, raw in entries:
        into.read += 1
        if key.startswith(b"\x00"):  # the job's own bookkeeping (watermarks)
            continue
        state = load_state(raw)
        into.outputs += expire(state, watermark)
        if is_empty(state):
            into.writes.append((key, None))
            continue
        new = dump_state(state)
        if new != raw:
            into.writes.append((key, new))
    return into


class PartitionSweeper:
    """Sweeps a partition a slice at a time, resuming where its last slice stopped.

    ``due(partition)`` says whether ``sweep_interval_s`` has passed since its last slice; ``plan`` reads at
    most ``batch`` entries through ``entries`` and prunes them; ``store`` writes the result through
    ``table`` (the Faust table, so that a rewrite goes to the changelog and a delete leaves a tombstone).
    Deliver ``Swept.outputs`` in between. Past the last entry, the next slice starts over from the first.

        sweeper = PartitionSweeper(entries=store_entries(table), table=table, expire=p.expire,
                                   is_empty=p.is_empty, batch=1000, interval_s=60.0)
        if sweeper.due(partition):
            swept = sweeper.plan(partition, watermark)
            deliver(swept.outputs)
            sweeper.store(swept)
    """

    def __init__(
        self,
        *,
        entries: Entries,
        table: MutableMapping[bytes, bytes],
        expire: Callable[[dict[str, Any], int | None], list[Output]],
        is_empty: Callable[[dict[str, Any]], bool],
        batch: int,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = entries
        self._table = table
        self._expire = expire
        self._is_empty = is_empty
        self._batch = batch
        self._interval_s = interval_s
        self._clock = clock
        self._cursors: dict[int, bytes] = {}
        self._next_at: dict[int, float] = {}

    def due(self, partition: int) -> bool:
        """True when the partition's next slice may run (never swept, or swept ``interval_s`` ago)."""
        next_at = self._next_at.get(partition)
        return next_at is None or self._clock() >= next_at

    def plan(self, partition: int, watermark: int | None) -> Swept:
        """Prune the partition's next slice; without a watermark there is nothing to expire against yet."""
        swept = Swept(partition)
        if watermark is None:
            return swept
        self._next_at[partition] = self._clock() + self._interval_s
        return sweep(
            self._next_slice(partition), expire=self._expire, is_empty=self._is_empty, watermark=watermark, into=swept
        )

    def store(self, swept: Swept) -> None:
        """Write a planned slice to the table (a record of its partition must be current)."""
        for key, value in swept.writes:
            if value is None:
                self._table.pop(key, None)
            else:
                self._table[key] = value
        if swept.writes:
            deleted = sum(value is None for _, value in swept.writes)
            log.info(
                "state sweep of partition %d: %d of %d entries pruned, %d deleted, %d events unattributed",
                swept.partition, len(swept.writes) - deleted, swept.read, deleted, len(swept.outputs),
            )  # fmt: skip

    def _next_slice(self, partition: int) -> list[tuple[bytes, bytes]]:
        """Up to ``batch`` entries from the cursor on; a short slice means the end, and the cursor resets."""
        start = self._cursors.pop(partition, None)
        entries = list(itertools.islice(self._entries(partition, start), self._batch))
        if len(entries) == self._batch:
            self._cursors[partition] = entries[-1][0] + b"\x00"  # the smallest key after the last one read
        return entries


def store_entries(table: Any) -> Entries:
    """The entries of a Faust table's RocksDB partitions, without the store's own offset key.

    Faust has no per-partition iteration from a key, so this reads the partition's ``Rdict`` directly
    (``faust.stores.rocksdb.Store._db_for_partition``, in raw mode: keys as the table stores them).
    """

    def entries(partition: int, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        store = table.data
        items = store._db_for_partition(partition).items(from_key=start)
        return ((key, value) for key, value in items if key != store.offset_key)

    return entries
