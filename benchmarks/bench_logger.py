"""Per-call cost of ``ExposureLogger.log_exposure()`` against two baselines, measured in one run.

- ``log_exposure``: what an app pays per exposure (validation, id, hand-off to the delivery thread),
  while the delivery thread encodes and produces to a real broker in the background;
- ``bare produce``: ``producer.produce(topic, pre_encoded_bytes, key)`` + ``poll(0)`` on the same broker;
- ``fastavro encode``: ``AvroSerde("Exposure").encode(record)`` alone.

The three are interleaved in rounds so machine noise hits them alike; goals are ratios and absolutes
from the same run. Usage:

    .venv/bin/python benchmarks/bench_logger.py [--calls 200000] [--rounds 10]

Starts its own 1-broker Kafka on free ports unless ABSTREAM_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from abstream.settings import default_cache_dir
from deploy.kafka_dist import KafkaDist
from deploy.local_kafka import LocalKafka
from deploy.topics import TopicSpec, create_topics
from producers.logger import DEFAULT_PRODUCER_CONFIG, ExposureLogger
from schemas.serde import AvroSerde


@contextmanager
def broker(workdir: Path):
    if bootstrap := os.environ.get("ABSTREAM_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    dist = KafkaDist(Path(os.environ.get("ABSTREAM_CACHE_DIR") or default_cache_dir()))
    cluster = LocalKafka(workdir / "kafka", dist=dist, base_port=0, heap="512m")
    try:
        yield cluster.up().bootstrap
    finally:
        cluster.down()


def sample(fn: Callable[[int], Any], calls: int) -> list[int]:
    """Nanoseconds per call of ``fn(i)``, one timing per call."""
    out = [0] * calls
    clock = time.perf_counter_ns
    for i in range(calls):
        t = clock()
        fn(i)
        out[i] = clock() - t
    return out


def percentiles(ns: list[int]) -> tuple[float, float]:
    ns = sorted(ns)
    return ns[len(ns) // 2] / 1000, ns[int(len(ns) * 0.99)] / 1000


def run(calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as bootstrap:
        prefix = "bench."
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), TopicSpec.load().resolve(prefix=prefix, brokers=1))
        logger = ExposureLogger(bootstrap_servers=bootstrap, spool_dir=Path(tmp) / "spool", topic_prefix=prefix)
        producer = Producer({**DEFAULT_PRODUCER_CONFIG, "bootstrap.servers": bootstrap})
        serde = AvroSerde("Exposure")
        units = [f"user-{i:08d}" for i in range(calls)]
        record = serde.version.wire and _example_record()
        encoded = serde.encode(record)
        keys = [u.encode() for u in units]

        def log(i: int) -> None:
            logger.log_exposure(
                experiment="checkout_v2", revision=3, variant="B", unit_id=units[i], scheme="sha256-weights"
            )

        def bare(i: int) -> None:
            producer.produce("bench.exposures", encoded, keys[i])
            producer.poll(0)

        def encode(_: int) -> None:
            serde.encode(record)

        results: dict[str, list[int]] = {"log_exposure": [], "bare produce": [], "fastavro encode": []}
        per_round = calls // rounds
        for _ in range(rounds):
            for name, fn in (("log_exposure", log), ("bare produce", bare), ("fastavro encode", encode)):
                results[name] += sample(fn, per_round)
            logger.flush(60)
            producer.flush(60)
        stats = logger.stats
        logger.close()
        assert stats.failed == 0 and stats.spooled == 0, stats
        return {name: percentiles(ns) for name, ns in results.items()}


def _example_record() -> dict[str, Any]:
    return {
        "event_id": "6f1c2f0e-6a77-4d1e-9a3c-8d6f0b1e2a3b", "experiment": "checkout_v2", "revision": 3,
        "variant": "B", "unit_type": "user_id", "unit_id": "user-00000001", "scheme": "sha256-weights",
        "hash_seed": None, "hash_version": None, "bucket_position": None, "bucket_index": None, "params": {},
        "hash_used": True, "sticky_bucket_used": False, "forced": False,
        "source": {"sdk": "abstream", "sdk_version": "0.1.0", "app": None, "host": "bench"},
        "client_ts": 1_795_333_475_761, "received_ts": None, "context": {}, "sampling_rate": 1.0,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    results = run(args.calls, args.rounds)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'path':<18}{'p50 µs':>10}{'p99 µs':>10}")
    for name, (p50, p99) in results.items():
        print(f"{name:<18}{p50:>10.2f}{p99:>10.2f}")
    log50, log99 = results["log_exposure"]
    bare50, bare99 = results["bare produce"]
    print(f"log_exposure / bare produce: p50 {log50 / bare50:.2f}x, p99 {log99 / bare99:.2f}x")
    goals = {"p50 <= 4 µs": log50 <= 4, "p99 <= 10 µs": log99 <= 10, "p50 <= 3x bare": log50 <= 3 * bare50}
    print("goals: " + ", ".join(f"{goal} {'met' if ok else 'MISSED'}" for goal, ok in goals.items()))


if __name__ == "__main__":
    main()
