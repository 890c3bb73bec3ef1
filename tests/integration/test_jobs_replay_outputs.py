"""A jobs replay on the real broker re-emits its outputs byte for byte: every record the output topics get
after an operator resets the jobs' group to earliest equals a record they had for the same key before.

The traffic has what makes decisions depend on the watermark: late conversions, events of units never
exposed (decided out of the buffer, their units' state deleted), events outside every window, corrections,
variant switches and wrong assignments. The replay runs with the watermark the worker restores (the last
one it stored), hours past most of the events, and with the clock moved on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.integration import jobs_traffic as ref
from tests.integration.test_replays_end_to_end import _caught_up, _replay_jobs
from tests.integration.test_stream_jobs import OUTPUTS, Pipeline, _send_late, _send_traffic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Dead letters carry the time the job wrote them; the malformed records are left out here.
TOPICS = [topic for topic in OUTPUTS if topic != "dead-letters"]


def _records(pipe: Pipeline) -> dict[str, dict[tuple[int, int], tuple[bytes, bytes]]]:
    """Per output topic: (partition, offset) -> (key, value)."""
    out = {}
    for topic in TOPICS:
        messages = pipe.messages(pipe.prefix + topic)
        out[topic] = {(m.partition(), m.offset()): (m.key(), m.value()) for m in messages}
    return out


def _settled(pipe: Pipeline, traffic: ref.Traffic, quiet_s: float = 5.0, timeout: float = 180.0) -> None:
    """Wait until every input is committed, every expected event decided, and the outputs stop growing."""
    _caught_up(pipe)
    exposures = traffic.exposures + traffic.clock_jump
    expected = ref.unattributed(exposures, traffic.events + traffic.clock_jump_events, traffic.late_events)
    deadline = time.monotonic() + timeout
    while {u["event_id"] for u in pipe.read("unattributed-events")} < expected.keys():
        assert time.monotonic() < deadline, "the jobs did not decide every buffered event"
        time.sleep(1)
    sizes = None
    while sizes != (sizes := {t: len(r) for t, r in _records(pipe).items()}):
        time.sleep(quiet_s)


def test_a_jobs_replay_re_emits_every_output_byte_for_byte(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    pipe = Pipeline(kafka_bootstrap, topic_prefix, tmp_path)
    try:
        traffic = ref.generate(seed=23, units=150)
        traffic.malformed.clear()
        pipe.start("w1")
        _send_traffic(pipe, traffic)
        _send_late(pipe, traffic)
        _settled(pipe, traffic)
        before = _records(pipe)
        late = sum(c["late"] for c in pipe.read("attributed-conversions"))
        reasons = {u["reason"] for u in pipe.read("unattributed-events")}

        _replay_jobs(pipe)
        _caught_up(pipe)
        time.sleep(3)  # the last outputs are flushed before the offsets they follow are committed
        pipe.stop_all()
        after = _records(pipe)
    finally:
        pipe.stop_all()

    re_emitted, differing = {}, {}
    for topic in TOPICS:
        first = defaultdict(set)
        for key, value in before[topic].values():
            first[key].add(value)
        new = [(key, value) for position, (key, value) in after[topic].items() if position not in before[topic]]
        re_emitted[topic] = len(new)
        differing[topic] = sum(value not in first[key] for key, value in new)
    assert differing == dict.fromkeys(TOPICS, 0), f"differing records per topic {differing} of {re_emitted}"
    assert late > 0 and {"never_exposed", "outside_window"} <= reasons  # what a replay used to turn into late
    assert before["assignment-flags"] and before["variant-switches"]
    assert re_emitted["first-exposures"] > 0 and re_emitted["attributed-conversions"] > 0
