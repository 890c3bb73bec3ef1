"""Jobs and sink on the real broker and chDB: the report's numbers against a brute-force reference, and
unchanged after an operator replays the jobs and then the sink (consumer groups reset to earliest).

A jobs replay re-emits every output at new offsets, with new insert tokens: the aggregates must absorb
them. A sink replay re-reads every offset: the ledger and the aggregates must absorb it.
"""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.metrics import ExperimentMetrics, MetricSpec
from sinks.migrator import migrate
from sinks.report import fetch_report
from tests.integration import jobs_traffic as ref
from tests.integration.test_sink import Sink, reset_to_earliest
from tests.integration.test_stream_jobs import Pipeline, _effective, _send_traffic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLICKS = ExperimentMetrics(
    primary=["clickers"],
    secondary=["clicks"],
    definitions={
        "clickers": MetricSpec.model_validate(
            {"key": "clickers", "title": "Clickers", "type": "proportion", "numerator": {"events": "click"}}
        ),
        "clicks": MetricSpec.model_validate(
            {"key": "clicks", "title": "Clicks", "type": "mean", "numerator": {"events": "click"}}
        ),
    },
)


def _publish_metrics(pipe: Pipeline) -> None:
    """Revision 2 of each experiment: the same assignment, now with metrics (a metric change is a revision)."""
    records = [{**ref.definition_record(key, revision=2), "metrics": CLICKS.to_json()} for key in ref.EXPERIMENTS]
    pipe.produce("experiment-definitions", records, "ExperimentDefinition", key=lambda r: f"{r['key']}:2")


def _caught_up(pipe: Pipeline, timeout: float = 180.0) -> None:
    """Wait until the jobs' group has committed the end of both input topics."""
    # A consumer of the jobs' group id that never subscribes only reads the group's commits (it joins nothing).
    # (AdminClient.list_consumer_group_offsets is not used: librdkafka crashed in parsing its response here.)
    reader = Consumer({"bootstrap.servers": pipe.bootstrap, "group.id": pipe.env["ABSTREAM_APP_ID"]})
    try:
        names = [pipe.prefix + "exposures", pipe.prefix + "events"]
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in reader.list_topics(name, timeout=10).topics[name].partitions
        ]
        ends = {(tp.topic, tp.partition): reader.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        deadline = time.monotonic() + timeout
        while True:
            try:
                committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed(partitions, timeout=10)}
            except KafkaException:  # the group's coordinator is moving or loading: ask again
                committed = {}
            if committed and all(committed[key] >= end for key, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the jobs did not catch up within {timeout:.0f} s: {committed} vs {ends}")
            time.sleep(1)
    finally:
        reader.close()


def _replay_jobs(pipe: Pipeline) -> None:
    """As an operator would: stop the worker, reset its group to the start of its inputs, start it again."""
    pipe.stop("w1", signal.SIGTERM)
    admin = AdminClient({"bootstrap.servers": pipe.bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    partitions = [
        TopicPartition(name, p, 0)
        for name in (pipe.prefix + "exposures", pipe.prefix + "events")
        for p in metadata[name].partitions
    ]
    group = ConsumerGroupTopicPartitions(pipe.env["ABSTREAM_APP_ID"], partitions)
    deadline = time.monotonic() + 60
    while True:  # the group must be empty: its last member may take a moment to leave
        try:
            admin.alter_consumer_group_offsets([group])[group.group_id].result()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    pipe.start("w1")


def _truth(traffic: ref.Traffic) -> dict[str, dict[str, dict[str, int]]]:
    """Per experiment and variant (of each unit's earliest first exposure): units, converting units, conversions."""
    first = ref.first_exposures(traffic.exposures)
    attributed = ref.attributions(traffic.exposures, traffic.events)
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    converting: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (key, _), record in first.items():
        out[key][record["variant"]]["units"] += 1
    unit_of = {(r["event_id"]): (key, r["unit_id"]) for (key, _), r in first.items()}
    for _event, key, exposure_event_id in attributed:
        _, unit = unit_of[exposure_event_id]
        variant = first[(key, unit)]["variant"]
        out[key][variant]["conversions"] += 1
        converting[(key, variant)].add(unit)
    for (key, variant), units in converting.items():
        out[key][variant]["converting_units"] = len(units)
    return out


def _numbers(report: dict[str, Any]) -> dict[str, Any]:
    """Every number of the report, rounded where a sum of floats could differ in its last bits."""
    text = json.dumps(report, sort_keys=True, default=str)
    return json.loads(text, parse_float=lambda f: round(float(f), 9))


def test_the_report_matches_the_truth_and_no_number_moves_after_a_jobs_and_a_sink_replay(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, clickhouse: Any
) -> None:
    pipe = Pipeline(kafka_bootstrap, topic_prefix, tmp_path)
    try:
        _publish_metrics(pipe)
        traffic = ref.generate(seed=17, units=150)
        traffic.malformed.clear()
        pipe.start("w1")
        _send_traffic(pipe, traffic)
        _caught_up(pipe)
        expected = ref.attributions(traffic.exposures, traffic.events)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # corrections of first exposures may still be on their way
            first = {(f["experiment"], f["unit_id"]): f["event_id"] for f in pipe.read("first-exposures")}
            if _effective(pipe.read("attributed-conversions"), first) == expected:
                break
            time.sleep(1)
        migrate(clickhouse)
        sink = Sink(kafka_bootstrap, topic_prefix, clickhouse, f"sink-{topic_prefix}")
        sink.run()
        before = {
            policy: _numbers(fetch_report(clickhouse, None, policy=policy)) for policy in ("first_seen", "exclude")
        }
        emitted = len(pipe.read("attributed-conversions"))

        _replay_jobs(pipe)
        _caught_up(pipe)
        time.sleep(3)  # the last outputs are flushed before the offsets they follow are committed
        pipe.stop_all()
        replayed = len(pipe.read("attributed-conversions"))
        sink.run()
        after_jobs = {p: _numbers(fetch_report(clickhouse, None, policy=p)) for p in ("first_seen", "exclude")}
        reset_to_earliest(sink)
        sink.run()
        after_sink = {p: _numbers(fetch_report(clickhouse, None, policy=p)) for p in ("first_seen", "exclude")}
    finally:
        pipe.stop_all()

    assert replayed > emitted  # the jobs really re-emitted their outputs, at new offsets
    assert after_jobs == before and after_sink == before
    truth = _truth(traffic)
    report = before["first_seen"]["experiments"]
    for key, variants in truth.items():
        for variant, want in variants.items():
            got = report[key]["variants"][variant]
            assert {k: got[k] for k in ("units", "converting_units", "conversions")} == {
                "units": want["units"], "converting_units": want["converting_units"],
                "conversions": want["conversions"],
            }, (key, variant)  # fmt: skip
            if key not in ref.EXPERIMENTS:  # exposures of an experiment nobody defined: no metrics to read
                continue
            metrics = {m["key"]: m["variants"][variant] for m in report[key]["metrics"]}
            assert metrics["clickers"]["value"] == pytest.approx(want["converting_units"] / want["units"])
            assert metrics["clicks"]["value"] == pytest.approx(want["conversions"] / want["units"])
