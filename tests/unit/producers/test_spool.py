"""The spool keeps every record it accepted, in order, through rotation, acks, reopens, kills, torn writes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from abstream.errors import ConfigError, SpoolError, SpoolFullError, SpoolLockedError
from producers import spool as spool_module
from producers.spool import Spool, SpoolRecord

Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]


def message(i: int, size: int = 200) -> Message:
    """A deterministic record whose value says which one it is."""
    return "exposures", f"user-{i:04d}".encode(), f"{i:08d}".encode().ljust(size, b"."), None


def read_all(spool: Spool, batch: int = 97) -> list[SpoolRecord]:
    records: list[SpoolRecord] = []
    while chunk := spool.read(batch):
        records += chunk
    return records


def as_messages(records: list[SpoolRecord]) -> list[Message]:
    return [(r.topic, r.key, r.value, r.headers) for r in records]


def newest_segment(directory: Path) -> Path:
    return sorted(directory.glob("*.seg"))[-1]


def run_child(code: str, *args: str) -> subprocess.Popen[str]:
    """A separate process running ``code`` (the spool's lock is per process)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )


def test_round_trip_keeps_topic_key_value_and_headers(tmp_path: Path) -> None:
    sent: list[Message] = [
        ("exposures", b"user-1", b"\x00avro\xff", [("schema", b"7"), ("trace", b"")]),
        ("events.ünïcode", None, b"", None),
        ("exposures", b"", b"v" * 5000, None),
    ]
    with Spool(tmp_path) as spool:
        for msg in sent:
            spool.append(*msg)
        assert spool.pending_records == 3
        assert as_messages(spool.read(10)) == sent


def test_order_is_kept_across_segment_rotation(tmp_path: Path) -> None:
    sent = [message(i) for i in range(500)]
    with Spool(tmp_path, segment_bytes=4096) as spool:
        for msg in sent:
            spool.append(*msg)
        assert spool.segments > 20
        assert as_messages(read_all(spool)) == sent


def test_a_record_larger_than_a_segment_and_the_read_chunk_round_trips(tmp_path: Path) -> None:
    big = ("exposures", None, os.urandom(3 << 20), None)
    with Spool(tmp_path, segment_bytes=1 << 20, max_bytes=16 << 20) as spool:
        spool.append(*message(0))
        spool.append(*big)
        spool.append(*message(1))
        assert as_messages(read_all(spool)) == [message(0), big, message(1)]


def test_reopen_resumes_after_the_last_ack_and_never_re_yields_acked_records(tmp_path: Path) -> None:
    sent = [message(i) for i in range(100)]
    with Spool(tmp_path, segment_bytes=2048) as spool:
        for msg in sent:
            spool.append(*msg)
        batch = spool.read(30)
        spool.ack(batch[19].position)
        spool.read(30)  # read but never acked: must come back after the reopen
    with Spool(tmp_path, segment_bytes=2048) as spool:
        assert spool.pending_records == 80
        assert as_messages(read_all(spool)) == sent[20:]


def test_rewind_re_reads_from_the_first_unacked_record(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(10):
            spool.append(*message(i))
        batch = spool.read(6)
        spool.ack(batch[2].position)  # 0..2 delivered, 3 failed
        spool.rewind()
        assert as_messages(spool.read(100)) == [message(i) for i in range(3, 10)]


def test_ack_refuses_a_position_that_was_not_read_and_ignores_an_old_one(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(5):
            spool.append(*message(i))
        batch = spool.read(5)
        spool.rewind()
        with pytest.raises(SpoolError, match="cannot ack"):
            spool.ack(batch[3].position)
        batch = spool.read(4)
        spool.ack(batch[3].position)
        spool.ack(batch[1].position)  # already covered: no-op
        assert spool.pending_records == 1
        assert as_messages(spool.read(5)) == [message(4)]


def test_fully_acked_segments_are_deleted_and_their_space_returned(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=2048) as spool:
        for i in range(200):
            spool.append(*message(i))
        files_before = len(list(tmp_path.glob("*.seg")))
        batch = spool.read(100)
        spool.ack(batch[-1].position)
        assert len(list(tmp_path.glob("*.seg"))) == spool.segments < files_before
        spool.ack(read_all(spool)[-1].position)
        assert spool.pending_records == 0
        assert spool.pending_bytes == 8  # just the fresh segment's header
        assert len(list(tmp_path.glob("*.seg"))) == 1


def test_appends_after_a_full_drain_survive_a_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(*message(0))
        spool.ack(spool.read()[-1].position)
        spool.append(*message(1))
    with Spool(tmp_path) as spool:
        assert as_messages(read_all(spool)) == [message(1)]


def cut_mid_record(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 57)


def append_garbage(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")


def append_zeros(path: Path) -> None:  # what ext4 can show after a power cut
    with path.open("ab") as f:
        f.write(bytes(300))


@pytest.mark.parametrize("damage", [cut_mid_record, append_garbage, append_zeros])
def test_a_torn_tail_is_cut_off_and_the_spool_stays_appendable(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    with Spool(tmp_path, segment_bytes=4096) as spool:
        for i in range(50):
            spool.append(*message(i))
    damage(newest_segment(tmp_path))
    with Spool(tmp_path, segment_bytes=4096) as spool:
        assert spool.discarded_bytes > 0
        survivors = as_messages(read_all(spool))
        assert survivors == [message(i) for i in range(len(survivors))]
        assert len(survivors) >= 49
        spool.append(*message(1000))
    with Spool(tmp_path, segment_bytes=4096) as spool:
        assert spool.discarded_bytes == 0
        assert as_messages(read_all(spool)) == [*survivors, message(1000)]


def test_a_corrupt_sealed_segment_loses_only_its_rest_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path, segment_bytes=4096) as spool:
        for i in range(100):
            spool.append(*message(i))
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[1000] ^= 0xFF  # inside the fifth record: frames are 8 + 8 + 9 (topic) + 9 (key) + 200 bytes
    first.write_bytes(bytes(data))
    with Spool(tmp_path, segment_bytes=4096) as spool:
        values = [r.value for r in read_all(spool)]
    per_segment = (4096 - 8) // 234
    assert values == [message(i)[2] for i in [*range(4), *range(per_segment, 100)]]
    assert "corrupt segment" in caplog.text


def test_appends_after_a_power_cut_that_ate_acked_records_are_not_skipped(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(10):
            spool.append(*message(i))
        batch = spool.read(10)
        spool.ack(batch[7].position)
    # a power cut: the checkpoint had been synced, the records behind it had not
    os.truncate(newest_segment(tmp_path), batch[4].position.offset)
    with Spool(tmp_path) as spool:
        assert spool.pending_records == 0
        spool.append(*message(100))
    with Spool(tmp_path) as spool:
        assert as_messages(read_all(spool)) == [message(100)]


def test_an_unreadable_checkpoint_replays_everything_rather_than_losing_records(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(5):
            spool.append(*message(i))
        spool.ack(spool.read(2)[-1].position)
    (tmp_path / "checkpoint").write_text("{not json")
    with Spool(tmp_path) as spool:
        assert as_messages(read_all(spool)) == [message(i) for i in range(5)]


KILLED_WRITER = """
import sys
from producers.spool import Spool
spool = Spool(sys.argv[1], segment_bytes=8192, fsync_every=10**9, fsync_interval_s=3600)
i = 0
while True:
    spool.append("exposures", f"user-{i:04d}".encode(), f"{i:08d}".encode().ljust(200, b"."))
    i += 1
    if i % 100 == 0:
        spool.flush()
        print(i, flush=True)
"""


def test_a_writer_killed_mid_append_leaves_an_intact_prefix_with_every_synced_record(tmp_path: Path) -> None:
    with run_child(KILLED_WRITER, str(tmp_path)) as child:
        assert child.stdout is not None
        synced = 0
        while synced < 3000:
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            synced = int(line)
        os.kill(child.pid, signal.SIGKILL)  # while it is appending
    with Spool(tmp_path, segment_bytes=8192) as spool:
        survivors = as_messages(read_all(spool, batch=1000))
    assert len(survivors) >= synced
    assert survivors == [(*message(i)[:3], None) for i in range(len(survivors))]


LOCK_HOLDER = """
import sys
from producers.spool import Spool
spool = Spool(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with run_child(LOCK_HOLDER, str(tmp_path)) as child:  # leaving closes its stdin, so it exits
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(SpoolLockedError, match=f"locked by process {child.pid}") as caught:
            Spool(tmp_path)
        os.kill(child.pid, signal.SIGKILL)
    assert caught.value.pid == child.pid
    assert str(tmp_path) in str(caught.value)
    Spool(tmp_path).close()  # the dead holder's lock went with it


def test_a_second_spool_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(SpoolLockedError, match=str(os.getpid())):
        Spool(tmp_path)


def test_concurrent_appends_while_replaying_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    writers, per_writer = 4, 3000
    spool = Spool(tmp_path, segment_bytes=16384, fsync_every=500)
    done = threading.Event()

    def write(w: int) -> None:
        for i in range(per_writer):
            spool.append("exposures", None, f"{w}:{i}".encode())

    def replay() -> list[bytes]:
        seen: list[bytes] = []
        while not (done.is_set() and spool.pending_records == 0):
            batch = spool.read(128)
            if batch:
                seen += [r.value for r in batch]
                spool.ack(batch[-1].position)
            else:
                time.sleep(0.001)
        return seen

    with ThreadPoolExecutor(writers + 1) as pool:
        reader = pool.submit(replay)
        for future in [pool.submit(write, w) for w in range(writers)]:
            future.result()
        done.set()
        seen = reader.result(timeout=30)
    spool.close()
    assert len(seen) == len(set(seen)) == writers * per_writer
    for w in range(writers):
        assert [v for v in seen if v.startswith(f"{w}:".encode())] == [f"{w}:{i}".encode() for i in range(per_writer)]


def test_a_full_spool_raises_instead_of_dropping_and_recovers_after_acks(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=4096, max_bytes=16384) as spool:
        stored = 0
        with pytest.raises(SpoolFullError, match="max_bytes=16384") as caught:
            while True:
                spool.append(*message(stored))
                stored += 1
        assert caught.value.max_bytes == 16384
        assert caught.value.pending_bytes + 234 > 16384
        assert spool.pending_records == stored
        spool.ack(read_all(spool)[-1].position)
        spool.append(*message(stored))
        assert as_messages(read_all(spool)) == [message(stored)]


def test_fsync_runs_in_batches_not_per_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[int] = []
    real = spool_module._datasync

    def counting_datasync(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(spool_module, "_datasync", counting_datasync)
    with Spool(tmp_path, fsync_every=100, fsync_interval_s=3600) as spool:
        for i in range(250):
            spool.append(*message(i))
        assert len(syncs) == 2
        spool.flush()
        assert len(syncs) == 3


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SpoolError, match=f"spool directory {blocker / 'spool'} is not usable"):
        Spool(blocker / "spool")


def test_bad_options_and_use_after_close_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_bytes >= segment_bytes"):
        Spool(tmp_path, segment_bytes=4096, max_bytes=1024)
    spool = Spool(tmp_path)
    spool.close()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append(*message(0))


class SpoolVersusList(RuleBasedStateMachine):
    """Random appends, reads, acks, rewinds, torn reopens: the spool behaves like a list and two cursors."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.spool = self.open()
        self.sent: list[Message] = []
        self.acked = self.cursor = 0
        self.inflight: list[SpoolRecord] = []

    def open(self) -> Spool:
        return Spool(self.directory, segment_bytes=160, max_bytes=1 << 20, fsync_every=3)

    @rule(
        topic=st.sampled_from(["exposures", "ëvents"]),
        key=st.none() | st.binary(max_size=8),
        value=st.binary(max_size=60),
        headers=st.lists(st.tuples(st.text(max_size=4), st.binary(max_size=4)), max_size=2),
    )
    def append(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.spool.append(topic, key, value, headers)
        self.sent.append((topic, key, value, headers or None))

    @rule(n=st.integers(1, 8))
    def read(self, n: int) -> None:
        batch = self.spool.read(n)
        assert as_messages(batch) == self.sent[self.cursor : self.cursor + n]
        self.inflight += batch
        self.cursor += len(batch)

    @precondition(lambda self: self.inflight)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        k = data.draw(st.integers(0, len(self.inflight) - 1))
        self.spool.ack(self.inflight[k].position)
        self.acked = self.cursor - len(self.inflight) + k + 1
        del self.inflight[: k + 1]

    @rule()
    def rewind(self) -> None:
        self.spool.rewind()
        self.cursor, self.inflight = self.acked, []

    @rule(torn=st.booleans())
    def reopen(self, torn: bool) -> None:
        self.spool.close()
        if torn:
            with newest_segment(self.directory).open("ab") as f:
                f.write(b"\x00\x00\x00\x30half a record")
        self.spool = self.open()
        self.cursor, self.inflight = self.acked, []

    @invariant()
    def counts_match(self) -> None:
        assert self.spool.pending_records == len(self.sent) - self.acked

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.directory)


TestSpoolVersusList = SpoolVersusList.TestCase
TestSpoolVersusList.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
