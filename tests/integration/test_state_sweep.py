"""The state sweep on the real broker: units never seen again leave the ``units`` table, with a tombstone.

A worker runs with a one-minute grace period, a one-second sweep interval and slices of four entries (a
pass over a partition takes several). An experiment has ended; units exposed to it are never seen again,
while later traffic from other units moves every partition's watermark past its end and the grace period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import jobs_traffic as ref
from tests.integration.test_stream_jobs import Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENDED, RUNNING = "white_gold_btn", "moon_mars"
END_TS = ref.T0 + 10 * ref.MINUTE
LATER = ref.T0 + 120 * ref.MINUTE  # past END_TS + the grace period + the allowed lateness


def _exposures(key: str, units: list[str], ts: int, revision: int = 1) -> list[dict[str, Any]]:
    return [ref.exposure_record(key, u, ref.expected_variant(key, u), ts, revision=revision) for u in units]


def _changelog(pipe: Pipeline) -> dict[bytes, list[bytes | None]]:
    """Each key's values on the ``units`` table's changelog, in order (None: a tombstone)."""
    values: dict[bytes, list[bytes | None]] = {}
    for m in pipe.messages(f"{pipe.env['ABSTREAM_APP_ID']}-units-changelog"):
        values.setdefault(m.key(), []).append(m.value())
    return values


def _deleted(changelog: dict[bytes, list[bytes | None]]) -> set[bytes]:
    return {key for key, values in changelog.items() if values[-1] is None}


def _trickle_until(pipe: Pipeline, units: list[str], done: Callable[[], bool], timeout: float = 120.0) -> None:
    """Sweeps run between batches of records: keep later events coming on every partition until ``done``."""
    deadline = time.monotonic() + timeout
    ts = LATER
    while not done() and time.monotonic() < deadline:
        ts += 1_000
        pipe.produce("events", [ref.event_record(u, ts) for u in units], "Event")
        assert pipe.workers["w1"].poll() is None, (pipe.tmp / "w1.log").read_text()[-3000:]
        time.sleep(0.5)


def _first_exposure_ids(pipe: Pipeline, until: list[str], timeout: float = 120.0) -> dict[tuple[str, str], set[str]]:
    """The event ids of each (experiment, unit)'s first exposures, once every unit in ``until`` has one.

    A replay after a rebalance re-emits a first exposure identically: ids, not records, are what count.
    """
    deadline = time.monotonic() + timeout
    while True:
        ids: dict[tuple[str, str], set[str]] = {}
        for f in pipe.read("first-exposures"):
            ids.setdefault((f["experiment"], f["unit_id"]), set()).add(f["event_id"])
        if all((RUNNING, u) in ids for u in until):
            return ids
        assert time.monotonic() < deadline, f"no first exposure for {[u for u in until if (RUNNING, u) not in ids]}"
        time.sleep(0.5)


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path):
    pipe = Pipeline(kafka_bootstrap, topic_prefix, tmp_path)
    pipe.env |= {"ABSTREAM_STATE_GRACE_MS": "60000", "ABSTREAM_SWEEP_INTERVAL_S": "1", "ABSTREAM_SWEEP_BATCH": "4"}
    ended = {**ref.definition_record(ENDED, revision=2), "end_ts": END_TS}
    pipe.produce("experiment-definitions", [ended], "ExperimentDefinition", key=lambda r: f"{r['key']}:{r['revision']}")
    try:
        yield pipe
    finally:
        pipe.stop_all()


def test_units_never_seen_again_are_deleted_and_units_of_running_experiments_kept(pipeline: Pipeline) -> None:
    gone = [f"gone-{i}" for i in range(24)]
    kept = [f"kept-{i}" for i in range(12)]
    both = [f"both-{i}" for i in range(6)]  # in the ended experiment and in a running one
    exposures = _exposures(ENDED, gone + both, ref.T0, revision=2) + _exposures(RUNNING, kept + both, ref.T0)
    pipeline.start("w1")
    pipeline.produce("exposures", exposures, "Exposure")
    pipeline.produce("events", [ref.event_record(u, ref.T0 + ref.MINUTE) for u in gone[::2]], "Event")  # buffered
    pipeline.wait_for("first-exposures", len(exposures))

    later = ref.units_on_every_partition("later-")
    pipeline.produce("exposures", _exposures(RUNNING, later, LATER), "Exposure")
    gone_keys = {u.encode() for u in gone}
    _trickle_until(pipeline, later, lambda: gone_keys <= _deleted(_changelog(pipeline)))
    passes_end = time.monotonic() + 10  # a few more passes over every partition: time to delete what it should not
    _trickle_until(pipeline, later, lambda: time.monotonic() > passes_end)
    markers = ref.units_on_every_partition("marker-")  # once theirs are out, every partition has read what came before
    pipeline.produce("exposures", _exposures(RUNNING, kept + both + markers, LATER + ref.MINUTE), "Exposure")
    firsts = _first_exposure_ids(pipeline, until=markers)

    changelog = _changelog(pipeline)
    assert gone_keys - _deleted(changelog) == set()
    assert [u for u in kept + both if None in changelog[u.encode()]] == []
    original = {(e["experiment"], e["unit_id"]): {e["event_id"]} for e in exposures if e["experiment"] == RUNNING}
    assert {k: firsts[k] for k in original} == original  # the re-exposures were no first exposures
