"""The jobs' consumer: a seek to the committed offsets never races the hand-over of fetched records.

Faust's own fetch loop (``Consumer._drain_messages``) runs against a fake partition in place of the
consumer thread. The race it reproduces, from a ``kill -9`` and restart: the end of recovery seeks with
the flow running while a fetched record is being handed over to a full stream queue; the hand-over then
finishes after the seek, leaves the read offset past the committed one, and the records fetched again
from the committed offset are dropped as already read (Faust's "DROPPED MESSAGE ROFF").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream_jobs.app import Preflight, create_app
from stream_jobs.consumer import SeekSafeConsumer
from stream_jobs.settings import JobsSettings

_TP = TP("exposures", 2)


class _Partition:
    """One partition of 10 records, committed up to 5, fetched from ``position`` on."""

    def __init__(self, committed: int = 5, end: int = 10) -> None:
        self.committed, self.end, self.position = committed, end, committed

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        if self.position >= self.end or _TP not in active_partitions:
            await asyncio.sleep(0.01)
            return {}
        records = [_record(offset) for offset in range(self.position, self.end)]
        self.position = self.end
        return {_TP: records}

    async def seek_to_committed(self) -> dict[TP, int]:
        await asyncio.sleep(0)  # the consumer thread
        self.position = self.committed
        return {_TP: self.committed}


def _record(offset: int) -> Any:
    return SimpleNamespace(
        topic=_TP.topic, partition=_TP.partition, offset=offset, timestamp=None, timestamp_type=0, headers=[],
        key=b"k", value=b"v", checksum=None, serialized_key_size=1, serialized_value_size=1,
    )  # fmt: skip


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def _consumer(tmp_path: Path) -> AsyncIterator[Any]:
    """The jobs app's consumer (made in the running loop, which it then uses), never started."""
    settings = JobsSettings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, app_id="seek-test")
    consumer: Any = create_app(settings, Preflight(partitions=6, brokers=1)).consumer
    try:
        yield consumer
    finally:
        consumer._thread.thread_loop.close()  # the loop of its thread, which never started


async def _handed_over_after_a_seek(tmp_path: Path) -> list[int]:
    """The offsets handed to the streams once a seek, made while offset 7 was being handed over, is done."""
    async with _consumer(tmp_path) as consumer:
        return await _seek_while_handing_over(consumer)


async def _seek_while_handing_over(consumer: Any) -> list[int]:
    partition = _Partition()
    consumer._getmany, consumer.seek_to_committed = partition.getmany, partition.seek_to_committed
    consumer.highwater = lambda tp: partition.end
    handed: list[int] = []
    queue_full = asyncio.Event()  # the stream's queue: full while offset 7 is handed over, the first time

    async def callback(message: Any) -> None:
        handed.append(message.offset)
        if message.offset == 7 and not queue_full.is_set():
            await queue_full.wait()

    consumer.callback = callback
    consumer._set_active_tps({_TP})
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    drain = asyncio.ensure_future(consumer._drain_messages(fetcher))
    try:
        await _until(lambda: 7 in handed)
        seek = asyncio.ensure_future(consumer.perform_seek())  # as Faust ends a recovery: the flow running
        await asyncio.sleep(0.05)
        queue_full.set()  # the agent takes its batch: the queue has room again
        await seek
        handed.clear()  # what was handed over before the seek: the streams' queues are cleared now
        consumer.resume_flow()
        await _until(lambda: len(handed) >= 5 or 9 in handed)
        await asyncio.sleep(0.05)
        return handed
    finally:
        fetcher._stopped.set()
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


def test_the_jobs_app_uses_the_seek_safe_consumer(tmp_path: Path) -> None:
    async def consumer_type() -> type:
        async with _consumer(tmp_path) as consumer:
            return type(consumer)

    assert issubclass(asyncio.run(consumer_type()), SeekSafeConsumer)


def test_every_record_from_the_committed_offset_is_handed_over_after_a_seek(tmp_path: Path) -> None:
    assert asyncio.run(_handed_over_after_a_seek(tmp_path)) == [5, 6, 7, 8, 9]
