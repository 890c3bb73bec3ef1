"""Faust's aiokafka consumer, with a seek to the committed offsets that no fetched record can race.

At the end of a rebalance's recovery, Faust resumes the input partitions, then seeks them to their
committed offsets (``Consumer.perform_seek``), then clears the streams' queues and resumes the flow.
The flow is still running during that seek (it was resumed to read the changelogs), so the fetcher
keeps handing records to the streams while the seek happens in the consumer's thread. Records fetched
from the new position before ``perform_seek`` has reset the read offsets are dropped as already read,
or land in a queue that is cleared right after; the fetch position has moved past them, so they are
never fetched again. The partition's commit then stalls (nothing comes after them) or jumps over them
at the next record (Faust counts the range as a gap). Seen: a ``kill -9`` and restart lost the clock-jump
exposure of one partition and the clock-jump event of another (tests/integration/test_stream_jobs.py).

Here the seek first stops the flow and waits until the record being handed over, if any, is done with;
Faust's callers resume the flow after the seek, once the queues are cleared, and fetching starts over
from the committed offsets.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers.aiokafka import Consumer as AIOKafkaDriverConsumer
from faust.types import TP

__all__ = ["SeekSafeConsumer"]


class SeekSafeConsumer(AIOKafkaDriverConsumer):
    """A Faust consumer whose ``perform_seek`` never overlaps the hand-over of a fetched record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetcher_task: asyncio.Task[Any] | None = None  # the task handing fetched records to the streams
        self._between_batches = asyncio.Event()  # set while that task holds no fetched record
        self._between_batches.set()

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        # The fetcher's task is done with its last batch when it asks for the next one.
        self._fetcher_task = asyncio.current_task()
        self._between_batches.set()
        try:
            return await super()._wait_next_records(timeout)
        finally:
            self._between_batches.clear()

    async def perform_seek(self) -> None:
        """Seek to the committed offsets with the flow stopped: the caller resumes it."""
        self.stop_flow()
        fetcher = self._fetcher_task
        if fetcher is not None and fetcher is not asyncio.current_task() and not fetcher.done():
            await self._between_batches.wait()
        await super().perform_seek()
