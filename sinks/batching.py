"""Deterministic batches per partition: the offset ranges and the deduplication token of each insert.

A batch is a contiguous run of one partition's records, ``first_offset..last_offset``; its token is
``topic/partition/first-last/digest`` where the digest covers every record's bytes (so a topic that
was deleted and recreated, reusing offsets, never collides with its old tokens).

The token only protects a replay if the replay forms *the same* batch. Sizes and timers do not
guarantee that: a batch cut after one second holds whatever had arrived, and after a restart more
may be waiting. So every batch's range is written to a ledger (``sink_batches``) *before* it is
inserted, and a partition that resumes at an offset where a recorded batch starts re-forms exactly
that range (waiting for its last record if need be). A new batch never runs into the next recorded
range, so after a reset to an arbitrary offset the batches snap back onto the recorded boundaries.
Pure logic, no I/O: the worker feeds records and plans in and carries batches out.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from abstream.errors import DecodeError

__all__ = ["Batch", "Entry", "PartitionBuffer", "Plan", "batch_token"]


class Entry(NamedTuple):
    """One consumed record: its row, or the decode error that sends it to the dead-letter topic."""

    offset: int
    key: bytes | None
    value: bytes | None
    row: tuple[Any, ...] | None
    error: DecodeError | None


class Plan(NamedTuple):
    """A batch range recorded in the ledger, and the token its rows were inserted under ("" if not known)."""

    first_offset: int
    last_offset: int
    inserted_token: str = ""


def batch_token(topic: str, partition: int, first: int, last: int, values: Iterable[bytes | None]) -> str:
    """The insert deduplication token of a batch: its range plus a digest of the records' bytes."""
    digest = hashlib.blake2b(digest_size=8)
    for value in values:
        raw = value or b""
        digest.update(len(raw).to_bytes(4, "little") + raw)
    return f"{topic}/{partition}/{first}-{last}/{digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class Batch:
    """Records ``first_offset..last_offset`` of one partition, to insert (rows) and dead-letter (errors)."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    entries: tuple[Entry, ...]
    planned: bool
    inserted_token: str = ""  # a replayed range: the token the ledger says its rows were inserted under
    # Digest of every record: computed once (the ledger, the replay check and the insert all need it).
    token: str = field(init=False)

    def __post_init__(self) -> None:
        values = (e.value for e in self.entries)
        token = batch_token(self.topic, self.partition, self.first_offset, self.last_offset, values)
        object.__setattr__(self, "token", token)  # frozen

    @property
    def already_inserted(self) -> bool:
        """A replay of a batch whose rows are in (the same records: the same token)."""
        return bool(self.inserted_token) and self.inserted_token == self.token

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return [e.row for e in self.entries if e.row is not None]

    @property
    def dead(self) -> list[Entry]:
        return [e for e in self.entries if e.error is not None]

    @property
    def plan(self) -> Plan:
        return Plan(self.first_offset, self.last_offset)


@dataclass(slots=True)
class PartitionBuffer:
    """The consumed, not yet committed records of one partition, and the ledger's plans ahead of them."""

    topic: str
    partition: int
    entries: list[Entry] = field(default_factory=list)
    started_at: float | None = None
    at_end: bool = False
    plans: deque[Plan] | None = None  # None: not loaded from the ledger yet
    plans_complete: bool = False  # the ledger holds no plans beyond those loaded
    failures: int = 0
    retry_at: float = 0.0

    def add(self, entry: Entry, now: float) -> None:
        if not self.entries:
            self.started_at = now
        self.entries.append(entry)
        self.at_end = False

    def due(self, now: float, *, max_rows: int, interval: float) -> bool:
        """Whether a batch should be cut now: enough records, or the oldest waited ``interval``."""
        if not self.entries or now < self.retry_at:
            return False
        assert self.started_at is not None
        return len(self.entries) >= max_rows or now - self.started_at >= interval

    def needs_plans(self) -> bool:
        """Whether the ledger must be asked for the plans that start at or after the first record."""
        return bool(self.entries) and (self.plans is None or (not self.plans and not self.plans_complete))

    def load_plans(self, plans: list[Plan], *, complete: bool) -> None:
        self.plans = deque(plans)
        self.plans_complete = complete

    def next_batch(self, max_rows: int) -> Batch | None:
        """The batch to insert now, or None while a recorded range waits for its last record."""
        if not self.entries:
            return None
        first = self.entries[0].offset
        plans = self._plans_from(first)
        if plans and plans[0].first_offset == first:
            return self._replay(plans[0])
        bound = plans[0].first_offset - 1 if plans else None
        cut = [e for e in self.entries[:max_rows] if bound is None or e.offset <= bound]
        return self._batch(cut, planned=False)

    def remember(self, batch: Batch) -> None:
        """Keep a just-recorded plan, so a retry of the same batch re-forms the same range."""
        if self.plans is None:
            self.plans = deque()
        if not self.plans or self.plans[0].first_offset != batch.first_offset:
            self.plans.appendleft(batch.plan)

    def drop_through(self, last_offset: int, now: float) -> None:
        """Forget the records and plans up to ``last_offset``: they are committed."""
        self.entries = [e for e in self.entries if e.offset > last_offset]
        self.started_at = now if self.entries else None
        while self.plans and self.plans[0].first_offset <= last_offset:
            self.plans.popleft()
        self.failures, self.retry_at = 0, 0.0

    def _plans_from(self, first: int) -> deque[Plan]:
        plans = self.plans if self.plans is not None else deque()
        while plans and plans[0].first_offset < first:
            plans.popleft()
        return plans

    def _replay(self, plan: Plan) -> Batch | None:
        if self.entries[-1].offset < plan.last_offset and not self.at_end:
            return None
        cut = [e for e in self.entries if e.offset <= plan.last_offset]
        return Batch(
            self.topic, self.partition, plan.first_offset, plan.last_offset, tuple(cut), True, plan.inserted_token
        )

    def _batch(self, cut: list[Entry], *, planned: bool) -> Batch:
        return Batch(self.topic, self.partition, cut[0].offset, cut[-1].offset, tuple(cut), planned)
